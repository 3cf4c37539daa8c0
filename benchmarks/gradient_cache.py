"""Gradient caching: peak memory and time per example of MiniLM steps over big batches.

The user's `model.fit` of `TripletSemiHard.from_encoder(MiniLM-L6, pooling="mean")`,
semi-hard mining, Adam, 2 threads, on class-balanced P x K batches of WordNet glosses
(texts cut to 32 tokens; WordNet's 45 classes allow no P = 256, so P = 32 classes of
K = B / 32), with and without `mini_batch_size=64`, at batch 1024 and 4096. Each configuration runs in its own process (peak RSS is the
process's): one warm-up step, then --steps timed steps. The uncached 4096 step is only
run when 4x the uncached 1024 peak fits in the available memory.
Writes benchmarks/results/gradient_cache.md.

    python benchmarks/gradient_cache.py [--steps 2]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES_PER_BATCH, MINI_BATCH_SIZE, SEQUENCE_LENGTH = 32, 64, 32


def worker(batch_size, mini_batch_size, steps):
    import keras
    import tensorflow as tf

    from encode_throughput import THREADS
    from encode_throughput import minilm_directory
    from train_throughput import LEARNING_RATE, MARGIN, stratified_glosses

    from keras_siamese.data import class_balanced_batches
    from keras_siamese.layers import TextEncoder
    from keras_siamese.models import TripletSemiHard

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    texts, labels, _ = stratified_glosses(40000)
    encoder = TextEncoder.from_preset(minilm_directory(), sequence_length=SEQUENCE_LENGTH)
    batches = class_balanced_batches(
        texts, labels, CLASSES_PER_BATCH, batch_size // CLASSES_PER_BATCH, seed=0, batches_per_epoch=steps + 1
    )
    model = TripletSemiHard.from_encoder(encoder, pooling="mean", margin=MARGIN, mini_batch_size=mini_batch_size)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE))
    model.fit(batches.take(1), verbose=0)
    started = time.perf_counter()
    model.fit(batches.skip(1), verbose=0)
    seconds = time.perf_counter() - started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(json.dumps({"ms_per_example": 1000 * seconds / (steps * batch_size), "peak_gb": peak_gb}))


def run(batch_size, mini_batch_size, steps):
    command = [sys.executable, __file__, "--worker", str(batch_size), str(mini_batch_size or 0), "--steps", str(steps)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=HERE)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: " + (done.stderr.strip().splitlines() or [""])[-1][:120]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def available_gb():
    with open("/proc/meminfo") as meminfo:
        return next(int(line.split()[1]) / 1e6 for line in meminfo if line.startswith("MemAvailable:"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1] or None, args.steps)
        return
    from encode_throughput import write_report

    results = {(1024, None): run(1024, None, args.steps), (1024, MINI_BATCH_SIZE): run(1024, MINI_BATCH_SIZE, args.steps)}
    uncached_peak = results[(1024, None)].get("peak_gb", float("inf"))
    if 4 * uncached_peak < available_gb():
        results[(4096, None)] = run(4096, None, args.steps)
    else:
        results[(4096, None)] = {"error": f"not run: ~{4 * uncached_peak:.0f} GB needed, {available_gb():.0f} GB available"}
    results[(4096, MINI_BATCH_SIZE)] = run(4096, MINI_BATCH_SIZE, args.steps)
    reference = results[(1024, None)]
    lines = [
        f"# Gradient caching: MiniLM-L6 (texts cut to {SEQUENCE_LENGTH} tokens), semi-hard, "
        f"P = {CLASSES_PER_BATCH} classes x K = B / {CLASSES_PER_BATCH}, {args.steps} timed step(s), one run",
        "",
        "| batch | mini_batch_size | ms per example | peak RSS GB | time vs uncached 1024 | memory vs uncached 1024 |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for (batch_size, mini_batch_size), result in results.items():
        if "error" in result:
            lines.append(f"| {batch_size} | {mini_batch_size or '-'} | {result['error']} | | | |")
            continue
        time_ratio = result["ms_per_example"] / reference["ms_per_example"] if "ms_per_example" in reference else float("nan")
        memory_ratio = result["peak_gb"] / reference["peak_gb"] if "peak_gb" in reference else float("nan")
        lines.append(
            f"| {batch_size} | {mini_batch_size or '-'} | {result['ms_per_example']:.1f} | {result['peak_gb']:.2f} "
            f"| {time_ratio:.2f}x | {memory_ratio:.2f}x |"
        )
    write_report(os.path.join(HERE, "results", "gradient_cache.md"), lines)


if __name__ == "__main__":
    main()
