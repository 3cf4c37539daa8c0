"""Contrastive and online contrastive losses against plain-Python loops."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.losses.pairwise import (
    ContrastiveLoss,
    OnlineContrastiveLoss,
    contrastive_loss,
    online_contrastive_loss,
)
from tests.harness import check_bad_input
from tests.losses import oracles


def make_pairs(batch, seed, similar_fraction=0.5):
    rng = np.random.default_rng(seed)
    pairs = rng.normal(size=(batch, 2, 5)).astype(np.float32)
    labels = (rng.random(batch) < similar_fraction).astype(np.float32)
    return labels, pairs


@pytest.mark.parametrize("online", [False, True])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("batch,similar_fraction", [(1, 0.5), (7, 0.5), (32, 0.5), (12, 0.0), (12, 1.0)])
def test_matches_loop(online, distance, batch, similar_fraction):
    labels, pairs = make_pairs(batch, seed=batch, similar_fraction=similar_fraction)
    fn = online_contrastive_loss if online else contrastive_loss
    margin = 2.0 if distance == "euclidean" else 0.5
    want = oracles.contrastive(labels, pairs[:, 0], pairs[:, 1], margin, distance, online=online)
    assert float(fn(labels, pairs, margin, distance)) == pytest.approx(want, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("fn", [contrastive_loss, online_contrastive_loss])
def test_gradients_finite_for_identical_pairs(fn):
    pairs = tf.constant(np.ones((4, 2, 3), np.float32))
    with tf.GradientTape() as tape:
        tape.watch(pairs)
        loss = fn([1, 0, 1, 0], pairs, 0.5, "euclidean")
    assert np.all(np.isfinite(tape.gradient(loss, pairs).numpy()))


@pytest.mark.parametrize("jit_compile", [False, True])
def test_compiled(jit_compile):
    labels, pairs = make_pairs(16, seed=3)
    fn = tf.function(lambda y, x: online_contrastive_loss(y, x), jit_compile=jit_compile)
    want = oracles.contrastive(labels, pairs[:, 0], pairs[:, 1], 0.5, "cosine", online=True)
    assert float(fn(labels, pairs)) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_low_precision(dtype):
    labels, pairs = make_pairs(8, seed=4)
    low = tf.cast(pairs, dtype)
    loss = contrastive_loss(labels, low)
    assert loss.dtype == dtype
    assert float(loss) == float(tf.cast(contrastive_loss(labels, tf.cast(low, tf.float32)), dtype))


@pytest.mark.parametrize(
    "labels,pairs,message",
    [
        (np.zeros(4), np.ones((4, 3)), "rank 3"),
        (np.zeros(4), np.ones((4, 1, 3)), "at least 2"),
        (np.zeros(3), np.ones((4, 2, 3)), "one entry per pair"),
        (np.zeros((4, 2)), np.ones((4, 2, 3)), r"shape \[B\] or \[B, 1\]"),
        (np.zeros(4), np.full((4, 2, 3), np.nan), "NaN"),
    ],
)
def test_bad_inputs(labels, pairs, message):
    with pytest.raises(ValueError, match=message):
        contrastive_loss(labels, pairs)


def test_unknown_distance():
    with pytest.raises(ValueError, match="Unknown pair distance"):
        ContrastiveLoss(distance="L2")


PAIRS = np.array([[[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]], "float32")
BAD_INPUT = {
    "ContrastiveLoss margin": (lambda: ContrastiveLoss(margin=-2), ValueError, "got -2"),
    "OnlineContrastiveLoss margin": (lambda: OnlineContrastiveLoss(margin=float("nan")), ValueError, "got nan"),
    "contrastive margin": (lambda: contrastive_loss([1, 0], PAIRS, margin=-1), ValueError, "got -1"),
    "unknown pair distance": (lambda: contrastive_loss([1, 0], PAIRS, distance="L2"),
                              ValueError, "Unknown pair distance 'L2'"),
    "contrastive label 2": (lambda: contrastive_loss([2.0, 0.0], PAIRS), ValueError,
                            "must be 1 (similar pair) or 0 (dissimilar pair), got [2.0]"),
    "online contrastive label -1": (lambda: online_contrastive_loss([1.0, -1.0], PAIRS), ValueError,
                                    "got [-1.0]"),
    "pair labels per pair": (lambda: contrastive_loss([1, 0, 1], PAIRS), ValueError,
                             "must have one entry per pair: got 3 for 2 pairs"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])


@pytest.mark.parametrize("cls", [ContrastiveLoss, OnlineContrastiveLoss])
def test_keras_loss_round_trip(cls):
    loss = cls(margin=1.5, distance="euclidean", name="pairs")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is cls and restored.get_config() == loss.get_config()
    labels, pairs = make_pairs(10, seed=5)
    online = cls is OnlineContrastiveLoss
    want = oracles.contrastive(labels, pairs[:, 0], pairs[:, 1], 1.5, "euclidean", online=online)
    assert float(restored(labels[:, None], pairs)) == pytest.approx(want, rel=1e-5)
