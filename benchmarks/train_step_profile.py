"""Where the time of one MiniLM training step goes: forward, backward, Adam, mining.

Times the parts of the step that benchmarks/train_throughput.py measures whole, on one
[64, 24] token batch of WordNet glosses (16 classes x 4, P x K), 2 threads, each part a
traced `tf.function` (median of --repeats calls after warm-up):

- the user's `model.fit` step (the reference; from a repeated batch, fit's per-call set-up excluded);
- forward only (`training=True`, dropout on);
- forward + semi-hard loss + gradients (no update);
- Adam's update alone, on all variables and without the word-embedding matrix;
- the semi-hard mining alone (loss and gradient with respect to the [64, 64] embeddings);
- forward + backward with the word embeddings frozen (no [30522, 384] gradient).

With --onednn-off each part is also timed in a subprocess with TF_ENABLE_ONEDNN_OPTS=0.
Writes benchmarks/results/train_step_profile.md.

    python benchmarks/train_step_profile.py [--repeats 15] [--onednn-off]
"""

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from encode_throughput import THREADS, minilm_directory, write_report  # noqa: E402
from train_throughput import BATCH_SIZE, LEARNING_RATE, MARGIN, SAMPLES_PER_CLASS, minilm_encoder  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LENGTH = 24


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


def measure(repeats):
    """Median milliseconds of each part of the step."""
    import keras

    from keras_siamese.losses import triplet_semihard_loss
    from keras_siamese.models import TripletSemiHard

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    tokens, labels = token_batch()
    encoder = minilm_encoder()
    model = TripletSemiHard.from_encoder(encoder, pooling="mean", margin=MARGIN)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), jit_compile=False)
    variables = model.trainable_variables
    word_embeddings = encoder.backbone.token_embedding.embeddings
    others = [variable for variable in variables if variable is not word_embeddings]

    def loss_and_gradients(watched):
        with tf.GradientTape() as tape:
            embeddings = model(tokens, training=True)
            loss = triplet_semihard_loss(labels, embeddings, MARGIN)
        return loss, tape.gradient(loss, watched)

    forward = tf.function(lambda: model(tokens, training=True))
    backward = tf.function(lambda: loss_and_gradients(variables))
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

    backward_frozen_words = tf.function(lambda: loss_and_gradients(others))
    batch = tf.data.Dataset.from_tensors((tokens, labels))
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
    return {name: seconds * 1000 for name, seconds in parts.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--onednn-off", action="store_true")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.repeats)))
        return
    columns = {"ms": measure(args.repeats)}
    if args.onednn_off:
        done = subprocess.run(
            [sys.executable, __file__, "--json", "--repeats", str(args.repeats)],
            capture_output=True, text=True, check=True, env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"},
        )
        columns["ms, oneDNN off"] = json.loads(done.stdout.strip().splitlines()[-1])
    header = "| part | " + " | ".join(columns) + " |"
    lines = [
        f"One MiniLM-L6 step on a [{BATCH_SIZE}, {LENGTH}] token batch, {THREADS} threads, "
        f"median of {args.repeats} calls.",
        "",
        header,
        "|---|" + "---:|" * len(columns),
    ]
    for part in columns["ms"]:
        lines.append(f"| {part} | " + " | ".join(f"{column[part]:.1f}" for column in columns.values()) + " |")
    write_report(os.path.join(HERE, "results", "train_step_profile.md"), lines)


if __name__ == "__main__":
    main()
