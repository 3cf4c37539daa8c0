"""Request latency of the main job's exported model: TF Serving's C++ loader vs Python tf.saved_model.load.

The model is the main job's recipe (`keras_siamese.training.build_model` with
the default `TrainingConfig`: a 2-layer, hidden-128 ALBERT with a 4,000-piece
SentencePiece vocabulary, 48 tokens, mean pooling, Dense(64, relu) ->
Dense(64) -> L2 normalisation), untrained: latency does not depend on the
weights. It is exported with `export_saved_model` (warmup records at batch 1
and 64) and, in the same run, timed per request at batch 1 and batch 64 on
bundled WordNet glosses:
- C++ loader: `keras_siamese.export.check_serving`, which loads the version
  as TF Serving does (`tensorflow::LoadSavedModel`, TF Text's op libraries,
  warmup replay) and times each `Session::Run` of `serving_default`;
- Python: `tf.saved_model.load(version).signatures["serving_default"]`, the
  same SavedModel, after replaying the same warmup batches.
Both use TensorFlow's default thread pools. Writes
benchmarks/results/serving_latency.md.

    python benchmarks/serving_latency.py [--requests-batch-1 500] [--requests-batch-64 60]
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401  registers TF Text's ops for the Python loader

from encode_throughput import write_report  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH_SIZES = (1, 64)
WARMUP_TEXTS = 8


def python_latencies(version_dir, texts, batch_size, warmup_texts):
    """Per-request seconds of the SavedModel's serving_default through Python TensorFlow."""
    serve = tf.saved_model.load(version_dir).signatures["serving_default"]
    for size in BATCH_SIZES:  # the same requests the warmup file replays
        serve(text=tf.constant([warmup_texts[i % len(warmup_texts)] for i in range(size)]))
    latencies, embeddings = [], []
    for first in range(0, len(texts), batch_size):
        batch = tf.constant(texts[first:first + batch_size])
        start = time.perf_counter()
        embedding = serve(text=batch)["embedding"].numpy()
        latencies.append(time.perf_counter() - start)
        embeddings.append(embedding)
    return latencies, np.concatenate(embeddings)


def stats_row(name, batch_size, latencies):
    milliseconds = np.asarray(latencies) * 1e3
    texts_per_second = batch_size * len(latencies) / np.sum(latencies)
    return (f"| {name} | {batch_size} | {len(latencies)} | {np.percentile(milliseconds, 50):.2f} | "
            f"{np.percentile(milliseconds, 90):.2f} | {milliseconds.mean():.2f} | {texts_per_second:.0f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests-batch-1", type=int, default=500)
    parser.add_argument("--requests-batch-64", type=int, default=60)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "serving_latency.md"))
    args = parser.parse_args()
    import keras

    from keras_siamese.data import load_wordnet_glosses
    from keras_siamese.export import check_serving, export_saved_model
    from keras_siamese.training import TrainingConfig, build_model

    load_average = os.getloadavg()[0]
    config = TrainingConfig().resolved()
    encoder = config.encoder_source  # its settings, for the report
    keras.utils.set_random_seed(config.seed)
    glosses, _, _ = load_wordnet_glosses(source="bundled")
    rng = np.random.default_rng(0)
    model = build_model(config, encoder.build(glosses))
    warmup_texts = list(rng.choice(glosses, WARMUP_TEXTS))
    requests = {1: args.requests_batch_1, 64: args.requests_batch_64}
    rows, agreement = [], []
    with tempfile.TemporaryDirectory() as workdir:
        version_dir = export_saved_model(model, os.path.join(workdir, "wordnet"), warmup_texts=warmup_texts,
                                         warmup_batch_sizes=list(BATCH_SIZES))
        for batch_size in BATCH_SIZES:
            texts = [str(text) for text in rng.choice(glosses, batch_size * requests[batch_size])]
            report = check_serving(version_dir, texts, batch_size=batch_size)
            rows.append(stats_row("C++ loader (as TF Serving)", batch_size, report.latencies_seconds))
            latencies, embeddings = python_latencies(version_dir, texts, batch_size, warmup_texts)
            rows.append(stats_row("Python tf.saved_model.load", batch_size, latencies))
            agreement.append(np.abs(report.embeddings - embeddings).max())

    lines = [
        "# TF Serving request latency: the main job's model, C++ loader vs Python",
        "",
        f"Model: main job recipe (ALBERT {encoder.num_layers} layers, hidden {encoder.hidden_dim}, "
        f"vocabulary {encoder.vocabulary_size}, sequence length {encoder.sequence_length}, "
        f"{config.pooling} pooling, {config.output_units}-d normalised), untrained. "
        f"Texts: bundled WordNet glosses. Machine: {os.cpu_count()} CPU cores (load average "
        f"{load_average:.1f} at the start: shared with other work), "
        f"TensorFlow {tf.__version__}. One run; each request timed around one session run / "
        "signature call, after the warmup records.",
        "",
        "| loader | batch | requests | p50 ms | p90 ms | mean ms | texts/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Largest difference between the two loaders' embeddings: {max(agreement):.1e}.",
    ]
    write_report(args.output, lines)


if __name__ == "__main__":
    main()
