"""Semi-hard triplet loss: time and peak memory against tensorflow-addons and sentence-transformers.

Forward + backward of the semi-hard triplet loss on L2-normalised 64-d embeddings,
at B = 128 ... 8192, with P x K labels (K = 4) and with skewed labels (one class
holds half the batch). Every (implementation, size, layout) runs in its own
subprocess, so peak RSS is that run's alone; all read the same saved .npy inputs
and the loss values are checked to agree (1e-5).

Peers run in the virtualenvs of benchmarks/make_peer_venvs.sh:
  tensorflow-addons 0.23 (TF 2.15)  -> benchmarks/.venvs/tfa
  sentence-transformers (PyTorch, 2 threads) -> benchmarks/.venvs/st

Usage:
  python benchmarks/loss_scaling.py [--max-batch 8192] [--tfa-max-batch 1024] [--st-max-batch 8192]
Writes benchmarks/results/loss_scaling.md and loss_scaling.png.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENVS = HERE / ".venvs"
RESULTS = HERE / "results"
IMPLEMENTATIONS = ("keras_siamese", "tfa", "st")
LABELS = {"keras_siamese": "keras_siamese", "tfa": "tensorflow-addons", "st": "sentence-transformers"}
MARGIN = 1.0
DIM = 64
TOLERANCE = 1e-5

# --- worker: runs in the implementation's own interpreter --------------------------------


def _time_runs(step, repeats):
    """Best wall time and its CPU time (user + system) over `repeats` calls, after a warm-up."""
    import time

    loss = step()
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), sum(os.times()[:2])
        loss = step()
        wall, cpu = time.perf_counter() - wall, sum(os.times()[:2]) - cpu
        if wall < best_wall:
            best_wall, best_cpu = wall, cpu
    return loss, best_wall, best_cpu


def _tensorflow_step(loss_fn, labels, embeddings):
    import tensorflow as tf

    @tf.function
    def step(labels, embeddings):
        with tf.GradientTape() as tape:
            tape.watch(embeddings)
            loss = loss_fn(labels, embeddings)
        return loss, tape.gradient(loss, embeddings)

    labels, embeddings = tf.constant(labels), tf.constant(embeddings)

    def run():
        loss, gradient = step(labels, embeddings)
        gradient.numpy()
        return float(loss)

    return run


def worker(implementation, labels_path, embeddings_path, repeats):
    import resource

    labels, embeddings = np.load(labels_path), np.load(embeddings_path)
    if implementation == "keras_siamese":
        sys.path.insert(0, str(ROOT))
        from keras_siamese.losses import triplet_semihard_loss

        step = _tensorflow_step(lambda y, x: triplet_semihard_loss(y, x, MARGIN), labels, embeddings)
    elif implementation == "tfa":
        import tensorflow_addons as tfa

        step = _tensorflow_step(
            lambda y, x: tfa.losses.triplet_semihard_loss(y, x, MARGIN), labels, embeddings
        )
    else:
        import torch
        from sentence_transformers.losses import BatchSemiHardTripletLoss

        torch.set_num_threads(2)
        loss_module = BatchSemiHardTripletLoss(model=None, margin=MARGIN)
        torch_labels = torch.from_numpy(labels)

        def step():
            x = torch.from_numpy(embeddings).requires_grad_(True)
            loss = loss_module.batch_semi_hard_triplet_loss(torch_labels, x)
            loss.backward()
            return float(loss)

    loss, wall, cpu = _time_runs(step, repeats)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB -> GB
    print(json.dumps({"loss": loss, "seconds": wall, "cpu_seconds": cpu, "peak_rss_gb": peak_gb}))


# --- driver ----------------------------------------------------------------------------


def make_inputs(batch, layout, seed=0):
    rng = np.random.default_rng(seed)
    if layout == "P x K":
        labels = np.arange(batch) // 4
    else:  # skewed: one class holds half the batch, the rest in classes of 4
        labels = np.where(np.arange(batch) < batch // 2, 0, 1 + np.arange(batch) // 4)
    labels = rng.permutation(labels).astype(np.int32)
    embeddings = rng.normal(size=(batch, DIM)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    return labels, embeddings


def interpreter(implementation):
    if implementation == "keras_siamese":
        return sys.executable
    return str(VENVS / implementation / "bin" / "python")


def available_memory_gb():
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1e6
    return float("inf")


def expected_memory_gb(implementation, batch):
    """Rough peak from the numbers measured on this machine (shared/DATA.md)."""
    if implementation == "tfa":  # [B^2, B] tiled tensors
        return 18.5 * (batch / 1024) ** 3
    if implementation == "st":
        return 5.0 * (batch / 8192) ** 2
    return 2.0 * (batch / 8192) ** 2


def run_one(implementation, labels_path, embeddings_path, batch):
    repeats = 3 if batch <= 2048 else 2
    command = [
        interpreter(implementation), __file__, "--worker", implementation,
        "--labels", labels_path, "--embeddings", embeddings_path, "--repeats", str(repeats),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode < 0:
        return {"error": f"killed (signal {-done.returncode}; out of memory?)"}
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if "Error" in line]
        return {"error": (errors or [f"exit {done.returncode}"])[-1][:120]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--labels", help=argparse.SUPPRESS)
    parser.add_argument("--embeddings", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--min-batch", type=int, default=128)
    parser.add_argument("--max-batch", type=int, default=8192)
    parser.add_argument("--tfa-max-batch", type=int, default=1024, help="TFA needs 18.5 GB at 1024")
    parser.add_argument("--st-max-batch", type=int, default=8192, help="sentence-transformers: 5 GB at 8192")
    parser.add_argument("--output", default=str(RESULTS / "loss_scaling"))
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.labels, args.embeddings, args.repeats)
        return

    limits = {"keras_siamese": args.max_batch, "tfa": args.tfa_max_batch, "st": args.st_max_batch}
    batches = [b for b in (128 * 2**i for i in range(7)) if args.min_batch <= b <= args.max_batch]
    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for layout in ("P x K", "skewed"):
            for batch in batches:
                labels, embeddings = make_inputs(batch, layout)
                labels_path, embeddings_path = f"{tmp}/labels.npy", f"{tmp}/embeddings.npy"
                np.save(labels_path, labels)
                np.save(embeddings_path, embeddings)
                row = {"layout": layout, "batch": batch}
                for implementation in IMPLEMENTATIONS:
                    if batch > limits[implementation]:
                        continue
                    if implementation != "keras_siamese" and not Path(interpreter(implementation)).exists():
                        row[implementation] = {"error": "venv missing (benchmarks/make_peer_venvs.sh)"}
                        continue
                    need = expected_memory_gb(implementation, batch)
                    if need * 1.1 > available_memory_gb():
                        row[implementation] = {"error": f"skipped: needs ~{need:.0f} GB"}
                        continue
                    row[implementation] = run_one(implementation, labels_path, embeddings_path, batch)
                    print(layout, batch, implementation, row[implementation], flush=True)
                rows.append(row)
    load = (load_before, os.getloadavg()[0])
    Path(args.output + ".json").write_text(json.dumps({"load_average": load, "rows": rows}, indent=1))
    write_markdown(rows, args, load, Path(args.output + ".md"))
    write_plot(rows, Path(args.output + ".png"))


def _cell(result):
    if result is None:
        return "—", "—"
    if "error" in result:
        return result["error"], "—"
    return f"{result['seconds']:.3f} ({result['cpu_seconds']:.2f})", f"{result['peak_rss_gb']:.2f}"


def _ratio(row, peer):
    ours, theirs = row.get("keras_siamese", {}), row.get(peer, {})
    if "seconds" in ours and "seconds" in theirs:
        return f"{theirs['seconds'] / ours['seconds']:.1f}x"
    return "—"


def _agreement(row):
    losses = [row[i]["loss"] for i in IMPLEMENTATIONS if "loss" in row.get(i, {})]
    if len(losses) < 2:
        return "—"
    spread = max(losses) - min(losses)
    verdict = "yes" if spread <= TOLERANCE * max(1.0, abs(losses[0])) else "**NO**"
    return f"{verdict} ({spread:.1e})"


def write_markdown(rows, args, load, path):
    import platform

    lines = [
        "# Semi-hard triplet loss: scaling with batch size",
        "",
        "Forward + backward of the semi-hard triplet loss (margin 1, L2 distance) on L2-normalised",
        f"{DIM}-d float32 embeddings; best wall time of 2–3 runs after a warm-up (its CPU seconds,",
        "user + system, in brackets), each implementation,",
        "size and layout in its own process (peak RSS = that process's maximum resident set, including",
        "the framework's own ~0.5–0.7 GB). Labels: **P x K** = classes of 4; **skewed** = one class holds",
        "half the batch, the rest classes of 4. Same saved inputs for all; *agree* = the loss values",
        f"match within {TOLERANCE:g} (max difference shown).",
        "",
        f"Machine: {os.cpu_count()} CPU cores, Python {platform.python_version()}; keras_siamese on",
        "TensorFlow 2.21 (graph mode, `tf.function`), tensorflow-addons 0.23 on TF 2.15,",
        "sentence-transformers on PyTorch CPU with 2 threads. Other processes may share the cores:",
        f"1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end (2 = both cores busy).",
        f"Limits: TFA up to B = {args.tfa_max_batch}, sentence-transformers up to B = {args.st_max_batch}",
        "(`--tfa-max-batch`, `--st-max-batch`).",
        "",
        "| labels | B | keras_siamese s (cpu) | GB | TFA s (cpu) | GB | sentence-transformers s (cpu) | GB "
        "| TFA / ours | ST / ours | agree |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        cells = [row["layout"], str(row["batch"])]
        for implementation in IMPLEMENTATIONS:
            cells.extend(_cell(row.get(implementation)))
        cells.extend([_ratio(row, "tfa"), _ratio(row, "st"), _agreement(row)])
        lines.append("| " + " | ".join(cells) + " |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


def write_plot(rows, path):
    try:
        import matplotlib
    except ImportError:
        print("matplotlib missing (pip install matplotlib): no plot")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for axis, layout in zip(axes, ("P x K", "skewed")):
        for implementation in IMPLEMENTATIONS:
            points = [
                (row["batch"], row[implementation]["seconds"])
                for row in rows
                if row["layout"] == layout and "seconds" in row.get(implementation, {})
            ]
            if points:
                axis.plot(*zip(*points), marker="o", label=LABELS[implementation])
        axis.set(xscale="log", yscale="log", title=f"{layout} labels", xlabel="batch size B")
        axis.set_xticks([128 * 2**i for i in range(7)], [str(128 * 2**i) for i in range(7)])
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("forward + backward (s)")
    axes[0].legend()
    figure.suptitle("Semi-hard triplet loss, 64-d embeddings, 2 CPU cores")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
