"""Where the time of one MiniLM training step goes: forward, backward, Adam, mining, by op type.

Times the parts of the step that benchmarks/train_throughput.py measures whole, on one
[64, 24] token batch of WordNet glosses (16 classes x 4, P x K), 2 threads, each part a
`tf.function` traced for any batch shape, as `fit` traces its step on length-bucketed data
(median of --repeats calls after warm-up), in float32 and bfloat16 (mixed_bfloat16):

- the user's `model.fit` step (the reference; from a repeated batch, fit's per-call set-up excluded);
- forward only (`training=True`, dropout on);
- forward + semi-hard loss + gradients (no update);
- Adam's update alone, on all variables and without the word-embedding matrix;
- the semi-hard mining alone (loss and gradient with respect to the [64, 64] embeddings);
- forward + backward with the word embeddings frozen (no [30522, 384] gradient);
- sentence-transformers' forward + loss + backward on the same token ids (its virtualenv,
  benchmarks/.venvs/st; float32, and bfloat16 under torch.autocast).

A second table splits forward + loss + gradients by TensorFlow op type (TensorFlow's
profiler: the self time of each type's calls summed; ops that run side by side overlap). With --onednn-off each part is also timed
in a subprocess with TF_ENABLE_ONEDNN_OPTS=0, with --stock in Keras' own graph
(`KERAS_SIAMESE_FUSED_GRAPH=0`, before keras_siamese.layers.fusion). Writes benchmarks/results/train_step_profile.md.

    python benchmarks/train_step_profile.py [--repeats 15] [--onednn-off] [--stock]
"""

import argparse
import collections
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from encode_throughput import ST_PYTHON, THREADS, minilm_directory, write_report  # noqa: E402
from train_throughput import BATCH_SIZE, LEARNING_RATE, MARGIN, SAMPLES_PER_CLASS, minilm_encoder  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LENGTH = 24
PRECISIONS = ("float32", "bfloat16")
# sentence-transformers' forward + loss + backward on the same token ids, in its own virtualenv.
TORCH_STEP = """
import json, sys, time, numpy, torch
from sentence_transformers import SentenceTransformer, losses
torch.set_num_threads({threads})
ids, mask, labels = (torch.tensor(value) for value in json.load(open(sys.argv[1])))
model = SentenceTransformer(sys.argv[2], device="cpu")
model.train()
loss = losses.BatchSemiHardTripletLoss(model=model, margin={margin})
features = {{"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}}
result = {{}}
for precision in ("float32", "bfloat16"):
    def step():
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            value = loss([dict(features)], labels)
        value.backward()
    for _ in range(3):
        step()
    times = []
    for _ in range({repeats}):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    result[precision] = 1000 * float(numpy.median(times))
print(json.dumps(result))
"""


def token_batch():
    """One P x K batch of glosses whose longest text packs to `LENGTH` tokens, and its labels."""
    from keras_siamese.data import load_wordnet_glosses
    from keras_siamese.layers import TextPreprocessor

    texts, labels, _ = load_wordnet_glosses(source="system")
    preprocessor = TextPreprocessor.from_preset(minilm_directory(), sequence_length=LENGTH, dynamic_length=False)
    rng = np.random.default_rng(0)
    classes = rng.choice(np.unique(labels), BATCH_SIZE // SAMPLES_PER_CLASS, replace=False)
    rows = np.concatenate(
        [rng.choice(np.flatnonzero(labels == label), SAMPLES_PER_CLASS, replace=False) for label in classes]
    )
    return preprocessor([texts[row] for row in rows]), tf.constant(labels[rows], tf.int32)


def median_seconds(function, repeats):
    for _ in range(3):
        function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def fit_seconds_per_step(model, batch, short=5, long=25):
    """Seconds per step of `model.fit`, without its per-call set-up: the difference between
    fits of `long` and `short` steps, divided by the extra steps (median of 3)."""

    def fit_seconds(steps):
        started = time.perf_counter()
        model.fit(batch.repeat(steps), verbose=0)
        return time.perf_counter() - started

    return float(np.median([(fit_seconds(long) - fit_seconds(short)) / (long - short) for _ in range(3)]))


def any_shape(function, tokens):
    """`function(tokens)` traced once for token batches of any shape (as `fit` traces on bucketed data)."""
    spec = {name: tf.TensorSpec([None, None], value.dtype) for name, value in tokens.items()}
    traced = tf.function(function, input_signature=[spec])
    return lambda: traced(tokens)


def measure(repeats, precision):
    """(median milliseconds of each part of the step, {op type: milliseconds} of forward + loss + gradients)."""
    import keras

    from keras_siamese.losses import triplet_semihard_loss
    from keras_siamese.models import TripletSemiHard
    from keras_siamese.precision import training_precision

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    tokens, labels = token_batch()
    with training_precision(precision):
        encoder = minilm_encoder()
        model = TripletSemiHard.from_encoder(encoder, pooling="mean", margin=MARGIN)
        model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE))
    variables = model.trainable_variables
    word_embeddings = encoder.backbone.token_embedding.embeddings
    others = [variable for variable in variables if variable is not word_embeddings]

    def loss_and_gradients(batch, watched):
        with tf.GradientTape() as tape:
            embeddings = model(batch, training=True)
            loss = triplet_semihard_loss(labels, embeddings, MARGIN)
        return loss, tape.gradient(loss, watched)

    forward = any_shape(lambda batch: model(batch, training=True), tokens)
    backward = any_shape(lambda batch: loss_and_gradients(batch, variables), tokens)
    _, gradients = backward()
    gradients = [tf.convert_to_tensor(gradient) for gradient in gradients]
    other_gradients = [g for g, v in zip(gradients, variables) if v is not word_embeddings]
    adam = tf.function(lambda: model.optimizer.apply(gradients, variables))
    adam_others = keras.optimizers.Adam(LEARNING_RATE)
    adam_others.build(others)
    adam_without_words = tf.function(lambda: adam_others.apply(other_gradients, others))
    embeddings = model(tokens)

    @tf.function
    def mining():
        with tf.GradientTape() as tape:
            tape.watch(embeddings)
            loss = triplet_semihard_loss(labels, embeddings, MARGIN)
        return tape.gradient(loss, embeddings)

    backward_frozen_words = any_shape(lambda batch: loss_and_gradients(batch, others), tokens)
    spec = ({name: tf.TensorSpec([None, None], value.dtype) for name, value in tokens.items()},
            tf.TensorSpec([None], labels.dtype))
    batch = tf.data.Dataset.from_generator(lambda: iter([(tokens, labels)]), output_signature=spec)
    model.fit(batch.repeat(3), verbose=0)  # traces the train step
    parts = {
        "model.fit, per step": fit_seconds_per_step(model, batch),
        "forward (training=True)": median_seconds(forward, repeats),
        "forward + loss + gradients": median_seconds(backward, repeats),
        "Adam update, all variables": median_seconds(adam, repeats),
        "Adam update, without word embeddings": median_seconds(adam_without_words, repeats),
        "semi-hard mining (loss + gradient, [64, 64])": median_seconds(mining, repeats),
        "forward + loss + gradients, word embeddings frozen": median_seconds(backward_frozen_words, repeats),
    }
    return {name: seconds * 1000 for name, seconds in parts.items()}, op_types(backward, repeats)


def op_types(function, repeats):
    """{TensorFlow op type: milliseconds of self time per call}, from TensorFlow's profiler."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(repeats):
            function()
        tf.profiler.experimental.stop()
        space = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
        data, _ = _pywrap_profiler_plugin.xspace_to_tools_data(space, "framework_op_stats", {})
    table = json.loads(data)[0]
    columns = [column["id"] for column in table["cols"]]
    totals = collections.Counter()
    for row in table["rows"]:
        values = dict(zip(columns, [cell.get("v") if cell else None for cell in row["c"]]))
        if values["type"] != "IDLE":
            totals[values["type"]] += values["total_self_time"] / 1000 / repeats
    return dict(totals)


def torch_step(repeats):
    """{precision: median milliseconds of sentence-transformers' forward + loss + backward}, or None."""
    if not os.path.exists(ST_PYTHON):
        return None
    tokens, labels = token_batch()
    with tempfile.TemporaryDirectory() as workdir:
        path = os.path.join(workdir, "batch.json")
        with open(path, "w") as file:
            json.dump([tokens["token_ids"].numpy().tolist(), tokens["padding_mask"].numpy().astype(int).tolist(),
                       labels.numpy().tolist()], file)
        script = TORCH_STEP.format(threads=THREADS, margin=MARGIN, repeats=repeats)
        done = subprocess.run([ST_PYTHON, "-c", script, path, minilm_directory()],
                              capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--onednn-off", action="store_true")
    parser.add_argument("--stock", action="store_true",
                        help="also profile Keras' own (unfused) graph: KERAS_SIAMESE_FUSED_GRAPH=0")
    parser.add_argument("--json", default=None, help=argparse.SUPPRESS)  # one precision, in a subprocess
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.repeats, args.json)))
        return
    columns, kinds = {}, {}
    for precision in PRECISIONS:
        # Each precision in a fresh process: the first model's traced functions and caches stay out.
        for graph, switch in [("", "1")] + [(", Keras' own graph", "0")] * args.stock:
            done = subprocess.run([sys.executable, __file__, "--json", precision, "--repeats", str(args.repeats)],
                                  capture_output=True, text=True, check=True,
                                  env={**os.environ, "KERAS_SIAMESE_FUSED_GRAPH": switch})
            columns[f"ms, {precision}{graph}"], kinds[precision + graph] = json.loads(done.stdout.strip().splitlines()[-1])
        if args.onednn_off:
            done = subprocess.run(
                [sys.executable, __file__, "--json", precision, "--repeats", str(args.repeats)],
                capture_output=True, text=True, check=True, env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"},
            )
            columns[f"ms, {precision}, oneDNN off"] = json.loads(done.stdout.strip().splitlines()[-1])[0]
    peer = torch_step(args.repeats)
    part = "sentence-transformers: forward + loss + backward (same token ids)"
    for precision in PRECISIONS:
        columns[f"ms, {precision}"][part] = peer[precision] if peer else float("nan")
    lines = [
        f"One MiniLM-L6 step on a [{BATCH_SIZE}, {LENGTH}] token batch, {THREADS} threads, median of "
        f"{args.repeats} calls; traced for any batch shape, as `fit` traces its step on bucketed batches.",
        "",
        "| part | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name in columns[f"ms, {PRECISIONS[0]}"]:
        lines.append(f"| {name} | " + " | ".join(f"{column.get(name, float('nan')):.1f}" for column in columns.values())
                     + " |")
    lines += [
        "",
        "Forward + loss + gradients by TensorFlow op type (self time of the calls per step, ms, summed; "
        "ops that run side by side overlap):",
        "",
        "| op type | " + " | ".join(kinds) + " |",
        "|---|" + "---:|" * len(kinds),
    ]
    top = sorted({kind for found in kinds.values() for kind in found},
                 key=lambda kind: -max(found.get(kind, 0) for found in kinds.values()))[:16]
    for kind in top:
        lines.append(f"| {kind} | " + " | ".join(f"{found.get(kind, 0.0):.1f}" for found in kinds.values()) + " |")
    write_report(os.path.join(HERE, "results", "train_step_profile.md"), lines)


if __name__ == "__main__":
    main()
