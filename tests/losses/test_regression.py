"""Cosine-similarity regression and CoSENT against plain-Python loops."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.losses.regression import CoSENTLoss, CosineSimilarityLoss, cosent_loss, cosine_similarity_loss
from tests.losses import oracles


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


def cosent_oracle(labels, pairs, scale):
    """log(1 + sum over i, j with labels[i] > labels[j] of exp(scale * (cos_j - cos_i)))."""
    cosines = [oracles.cosine(a, b) for a, b in pairs]
    total = 1.0
    for i, label_i in enumerate(labels):
        for j, label_j in enumerate(labels):
            if label_i > label_j:
                total += math.exp(scale * (cosines[j] - cosines[i]))
    return math.log(total)


@pytest.mark.parametrize("batch, scale", [(1, 20.0), (4, 1.0), (16, 5.0), (33, 20.0)])
def test_cosent_matches_loop(batch, scale):
    rng = np.random.default_rng(batch)
    pairs = rng.normal(size=(batch, 2, 5)).astype(np.float32)
    labels = rng.integers(0, 6, size=batch).astype(np.float32)  # STS-like scores, with ties
    got = float(cosent_loss(labels, pairs, scale))
    assert got == pytest.approx(cosent_oracle(labels, pairs, scale), rel=1e-5, abs=1e-6)


def test_cosent_reads_only_the_order_of_the_scores():
    pairs = np.random.default_rng(1).normal(size=(8, 2, 3)).astype(np.float32)
    scores = np.arange(8, dtype=np.float32)
    assert float(cosent_loss(scores, pairs)) == pytest.approx(float(cosent_loss(scores**3 / 7 - 2, pairs)), rel=1e-6)


def test_cosent_compiled_gradients_finite_with_large_scale_and_ties():
    pairs = tf.constant(np.random.default_rng(0).normal(size=(6, 2, 3)).astype(np.float32))
    labels = tf.constant([1.0, 1.0, 0.0, 2.0, 2.0, 0.0])
    fn = tf.function(lambda x: cosent_loss(labels, x, scale=100.0), jit_compile=True)
    with tf.GradientTape() as tape:
        tape.watch(pairs)
        loss = fn(pairs)
    assert np.isfinite(float(loss))
    assert np.all(np.isfinite(tape.gradient(loss, pairs).numpy()))


@pytest.mark.parametrize("scale", [0, -1.0, float("inf"), "20", True])
def test_cosent_scale_must_be_positive(scale):
    with pytest.raises(ValueError, match="scale"):
        CoSENTLoss(scale=scale)


def test_cosent_keras_loss_round_trip():
    loss = CoSENTLoss(scale=3.0)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert restored.get_config() == loss.get_config()
    pairs = np.random.default_rng(2).normal(size=(5, 2, 4)).astype(np.float32)
    labels = np.array([0.0, 5.0, 2.5, 1.0, 4.0], np.float32)
    assert float(restored(labels, pairs)) == pytest.approx(cosent_oracle(labels, pairs, 3.0), rel=1e-5)
