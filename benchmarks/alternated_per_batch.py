"""Per-batch serving speed of our SavedModels and sentence-transformers' fast backends, alternated.

On a machine whose speed drifts between runs (a shared VM), one run of
encode_throughput.py can flatter either side: it times our rows first and
the peers last. This script exports MiniLM in float32, bfloat16 and int8
(int8 calibrated on the 512 glosses after the timed ones, as
encode_throughput.py does), then for --rounds rounds times, one after the
other, each SavedModel called once per batch of 64 in order and
sentence-transformers' OpenVINO, ONNX Runtime int8 and torch float32
backends called the same way; the report gives every round's texts/s and
the median of each round's ratio to OpenVINO. Needs benchmarks/.venvs/st and
st-fast (make_peer_venvs.sh st st-fast).

    python benchmarks/alternated_per_batch.py [--texts 2000] [--rounds 3]
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import encode_throughput as shared  # noqa: E402

PEERS = {"openvino": shared.ST_FAST_PYTHON, "onnx-int8": shared.ST_FAST_PYTHON, "float32": shared.ST_PYTHON}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=os.path.join(shared.HERE, "results", "alternated_per_batch.md"))
    args = parser.parse_args()
    import tensorflow_text  # noqa: F401  the tokenizer's ops, for the loaded SavedModels
    from keras_siamese.export import export_saved_model

    tf.config.threading.set_intra_op_parallelism_threads(shared.THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(shared.THREADS)
    glosses = shared.wordnet_glosses(args.texts + shared.CALIBRATION_TEXTS)
    texts, calibration_texts = glosses[: args.texts], glosses[args.texts :]
    directory, work = shared.minilm_directory(), tempfile.mkdtemp()
    model = shared.embedding_model(directory)
    serves = {}
    for precision in ("float32", "bfloat16", "int8"):
        path = export_saved_model(model, os.path.join(work, precision), compute_dtype=precision,
                                  calibration_texts=calibration_texts if precision == "int8" else None)
        serves[f"keras_siamese {precision}"] = tf.saved_model.load(path).signatures["serving_default"]
    rates = {name: [] for name in [*serves, *(f"sentence-transformers {peer}" for peer in PEERS)]}
    for _ in range(args.rounds):
        for name, serve in serves.items():
            seconds, _ = shared.timed_serving_batches(serve, texts)
            rates[name].append(len(texts) / seconds)
        for peer, python in PEERS.items():
            timings, _ = shared.peer_run(python, directory, texts, work, peer)
            rates[f"sentence-transformers {peer}"].append(len(texts) / timings["per_batch_seconds"])
    openvino = np.array(rates["sentence-transformers openvino"])
    lines = [
        "# Per batch of 64, alternated",
        "",
        f"CPU: {shared.cpu_description()}; TensorFlow {tf.__version__}; {args.texts} glosses, "
        f"{args.rounds} rounds, each row once per round in the order below, {shared.THREADS} threads each.",
        "",
        "| path | texts/s, each round | median of the rounds' ratios to OpenVINO |",
        "|---|---|---:|",
        *(f"| {name} | {' / '.join(f'{rate:.0f}' for rate in values)} | "
          f"{np.median(np.array(values) / openvino):.2f}x |" for name, values in rates.items()),
    ]
    shared.write_report(args.output, lines)


if __name__ == "__main__":
    main()
