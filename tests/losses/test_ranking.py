"""Multiple-negatives ranking loss against a plain-Python softmax loop."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.losses.ranking import MultipleNegativesRankingLoss, multiple_negatives_ranking_loss
from tests.harness import check_bad_input
from tests.losses import oracles


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("batch,hard_negatives", [(1, 0), (5, 0), (16, 0), (6, 1), (4, 2)])
@pytest.mark.parametrize("scale", [1.0, 20.0])
def test_matches_loop(batch, hard_negatives, symmetric, scale):
    rng = np.random.default_rng(batch)
    pairs = rng.normal(size=(batch, 2 + hard_negatives, 6)).astype(np.float32)
    anchors = pairs[:, 0].tolist()
    candidates = [row.tolist() for column in range(1, 2 + hard_negatives) for row in pairs[:, column]]
    want = oracles.multiple_negatives_ranking(anchors, candidates, scale, symmetric)
    got = multiple_negatives_ranking_loss(pairs, scale, symmetric)
    assert float(got) == pytest.approx(want, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_compiled_with_gradients(jit_compile):
    pairs = tf.constant(np.random.default_rng(0).normal(size=(8, 2, 4)).astype(np.float32))

    @tf.function(jit_compile=jit_compile)
    def step(pairs):
        with tf.GradientTape() as tape:
            tape.watch(pairs)
            loss = multiple_negatives_ranking_loss(pairs, symmetric=True)
        return loss, tape.gradient(loss, pairs)

    loss, gradient = step(pairs)
    anchors, positives = pairs[:, 0].numpy().tolist(), pairs[:, 1].numpy().tolist()
    want = oracles.multiple_negatives_ranking(anchors, positives, 20.0, True)
    assert float(loss) == pytest.approx(want, rel=1e-5)
    assert np.all(np.isfinite(gradient.numpy()))


def test_bad_inputs():
    with pytest.raises(ValueError, match="rank 3"):
        multiple_negatives_ranking_loss(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match="at least 2"):
        multiple_negatives_ranking_loss(np.ones((4, 1, 3), np.float32))


BAD_INPUT = {
    "pairs of rank 2": (lambda: MultipleNegativesRankingLoss()(np.zeros(2), np.ones((2, 3), "float32")),
                        ValueError, "must have rank 3"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])


def test_keras_loss_round_trip():
    loss = MultipleNegativesRankingLoss(scale=10.0, symmetric=True)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert restored.get_config() == loss.get_config()
    pairs = np.random.default_rng(1).normal(size=(5, 2, 3)).astype(np.float32)
    want = oracles.multiple_negatives_ranking(pairs[:, 0].tolist(), pairs[:, 1].tolist(), 10.0, True)
    assert float(restored(np.zeros(5), pairs)) == pytest.approx(want, rel=1e-5)
