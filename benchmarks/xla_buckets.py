"""XLA on length-bucketed batches: compile time per bucket and step time after, with and without
`jit_compile`, in float32 and bfloat16 (all-MiniLM-L6-v2, semi-hard triplet loss, batch 64, 2 threads).

With length buckets a batch's shape is one of a few lengths, so XLA compiles one program per
bucket. Keras' `compile(jit_compile=True)` falls back to no XLA for these models (a layer
holding the tokenizer does not support it: Keras warns "Model doesn't support
`jit_compile=True`"), so the step timed here is the model's own `train_step` (loss, mining,
gradients, Adam, metrics) wrapped in `tf.function`, with `jit_compile` off (shapes relaxed,
as `fit` traces it) and on. For each of --buckets, in each precision, a fresh model runs one
batch of that bucket (the first call: tracing, and with XLA the compile), then --steps more,
timed. Writes benchmarks/results/xla_buckets.md.

    python benchmarks/xla_buckets.py [--buckets 12,20,32] [--steps 6] [--precisions float32,bfloat16]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from encode_throughput import THREADS, write_report  # noqa: E402
from train_throughput import (  # noqa: E402
    BATCH_SIZE, CLASSES_PER_BATCH, LEARNING_RATE, MARGIN, SAMPLES_PER_CLASS, gathered, minilm_encoder,
    stratified_glosses,
)

HERE = os.path.dirname(os.path.abspath(__file__))


def bucket_batches(labels, lengths, bucket_lengths, count, seed):
    """{bucket length: `count` P x K batches (position arrays) whose longest text fits that bucket
    and not the one below}."""
    from keras_siamese.data import ClassBalancedSampler

    boundaries = [length + 1 for length in bucket_lengths[:-1]]
    sampler = ClassBalancedSampler(labels, CLASSES_PER_BATCH, SAMPLES_PER_CLASS, seed, 400,
                                   lengths=lengths, bucket_boundaries=boundaries)
    batches = sampler.epoch_indices(0)
    longest = lengths[batches].max(axis=1)
    found = {}
    for length in bucket_lengths:
        below = max((b for b in bucket_lengths if b < length), default=0)
        chosen = batches[(longest <= length) & (longest > below)][:count]
        if len(chosen) == count:
            found[length] = chosen
    return found


def time_buckets(texts, labels, by_bucket, precision, jit_compile):
    """{bucket: (seconds of the first step on one batch, seconds per step after)} for one fresh model."""
    import keras

    from keras_siamese.layers.preprocessor import preprocess_batches
    from keras_siamese.models import TripletSemiHard
    from keras_siamese.precision import training_precision

    with training_precision(precision):
        model = TripletSemiHard.from_encoder(minilm_encoder(), pooling="mean", margin=MARGIN)
        model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE))
    step = tf.function(model.train_step, jit_compile=jit_compile, reduce_retracing=not jit_compile)
    timings = {}
    for length, batches in sorted(by_bucket.items()):
        data = list(preprocess_batches(gathered(texts, labels, batches), model.preprocessor))
        started = time.perf_counter()
        float(step(data[0])["loss"])
        first = time.perf_counter() - started
        started = time.perf_counter()
        for batch in data[1:]:
            float(step(batch)["loss"])
        timings[length] = (first, (time.perf_counter() - started) / (len(data) - 1))
        print(precision, jit_compile, length, timings[length], flush=True)
    return timings


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--glosses", type=int, default=20000)
    parser.add_argument("--buckets", default="12,20,32", help="bucket lengths to time (the preprocessor's)")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per bucket after the first")
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "xla_buckets.md"))
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)

    texts, labels, _ = stratified_glosses(args.glosses, args.seed)
    preprocessor = minilm_encoder().preprocessor
    lengths = np.asarray(preprocessor.token_lengths(texts))
    wanted = [int(length) for length in args.buckets.split(",")]
    missing = sorted(set(wanted) - set(preprocessor.buckets))
    if missing:
        sys.exit(f"not bucket lengths of the preprocessor: {missing}; its buckets: {preprocessor.buckets}")
    by_bucket = bucket_batches(labels, lengths, list(preprocessor.buckets), args.steps + 1, args.seed)
    by_bucket = {length: by_bucket[length] for length in wanted if length in by_bucket}

    lines = [
        f"# XLA per length bucket: all-MiniLM-L6-v2, semi-hard triplet loss, batch {BATCH_SIZE}, "
        f"{THREADS} threads, one run",
        "",
        f"Machine: {os.cpu_count()} CPU cores; TensorFlow {tf.__version__}. First call: the train step on one "
        "batch of the bucket (tracing; with XLA, compiling that shape). Step: mean of the next "
        f"{args.steps} steps.",
        "",
        "| bucket (tokens) | precision | first call, traced (s) | step, traced (ms) | first call, XLA (s) "
        "| step, XLA (ms) | XLA speed-up per step |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for precision in args.precisions.split(","):
        traced = time_buckets(texts, labels, by_bucket, precision, jit_compile=False)
        compiled = time_buckets(texts, labels, by_bucket, precision, jit_compile=True)
        for length in sorted(by_bucket):
            (traced_first, traced_step), (xla_first, xla_step) = traced[length], compiled[length]
            lines.append(
                f"| {length} | {precision} | {traced_first:.1f} | {1000 * traced_step:.0f} | {xla_first:.1f} | "
                f"{1000 * xla_step:.0f} | {traced_step / xla_step:.2f}x |"
            )
    write_report(args.output, lines)


if __name__ == "__main__":
    main()
