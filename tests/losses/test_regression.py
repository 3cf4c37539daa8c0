"""Cosine-similarity regression loss against a plain-Python loop."""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.losses.regression import CosineSimilarityLoss, cosine_similarity_loss

sys.path.insert(0, str(Path(__file__).parent))
import oracles  # noqa: E402


@pytest.mark.parametrize("batch", [1, 3, 17])
def test_matches_loop(batch):
    rng = np.random.default_rng(batch)
    pairs = rng.normal(size=(batch, 2, 4)).astype(np.float32)
    labels = rng.random(batch).astype(np.float32)
    want = sum((oracles.cosine(a, b) - float(y)) ** 2 for (a, b), y in zip(pairs, labels)) / batch
    assert float(cosine_similarity_loss(labels, pairs)) == pytest.approx(want, rel=1e-5)


def test_compiled_gradients_finite():
    pairs = tf.constant(np.random.default_rng(0).normal(size=(6, 2, 3)).astype(np.float32))
    fn = tf.function(lambda x: cosine_similarity_loss(tf.ones([6]), x), jit_compile=True)
    with tf.GradientTape() as tape:
        tape.watch(pairs)
        loss = fn(pairs)
    assert np.all(np.isfinite(tape.gradient(loss, pairs).numpy()))


def test_bad_inputs():
    with pytest.raises(ValueError, match="one entry per pair"):
        cosine_similarity_loss(np.zeros(2), np.ones((3, 2, 4), np.float32))


def test_keras_loss_round_trip():
    loss = CosineSimilarityLoss(name="sts")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert restored.get_config() == loss.get_config()
    pairs = np.array([[[1.0, 0.0], [1.0, 1.0]]], np.float32)
    assert float(restored(np.array([0.5]), pairs)) == pytest.approx((2**-0.5 - 0.5) ** 2, rel=1e-5)
