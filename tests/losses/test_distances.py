"""pairwise_distance against python loops, and its hand-written gradient against autodiff."""

import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.losses.distances import check_labels, pairwise_distance
from tests.losses import oracles


@pytest.mark.parametrize("distance", ["L2", "squared-L2", "angular"])
def test_matches_loop_with_zero_diagonal(distance):
    embeddings = np.random.default_rng(0).normal(size=(9, 5)).astype(np.float32)
    got = pairwise_distance(embeddings, distance).numpy()
    np.testing.assert_allclose(got, oracles.distance_matrix(embeddings, distance), atol=1e-5)
    assert got.dtype == np.float32 and np.all(np.diag(got) == 0.0)


@pytest.mark.parametrize("squared", [False, True])
def test_gradient_matches_autodiff_of_plain_formula(squared):
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(7, 3)).astype(np.float32))
    weights = tf.constant(rng.normal(size=(7, 7)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = tf.reduce_sum(weights * pairwise_distance(x, "squared-L2" if squared else "L2"))
        plain = tf.reduce_sum(tf.square(x[:, None] - x[None, :]), axis=2)
        plain = tf.where(tf.eye(7) > 0, 0.0, plain if squared else tf.sqrt(plain + tf.eye(7)))
        plain = tf.reduce_sum(weights * plain)
    np.testing.assert_allclose(tape.gradient(ours, x), tape.gradient(plain, x), rtol=1e-4, atol=1e-5)


def test_duplicate_rows_have_zero_distance_and_finite_gradient():
    x = tf.constant([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        d = pairwise_distance(x)
    assert float(d[0, 1]) == 0.0
    assert np.all(np.isfinite(tape.gradient(d, x).numpy()))


def test_check_labels_accepts_column_and_whole_floats():
    assert check_labels(np.array([[1.0], [2.0]]), 2).numpy().tolist() == [1, 2]
    with pytest.raises(ValueError, match="whole numbers"):
        check_labels(np.array([1.5, 2.0]), 2)
