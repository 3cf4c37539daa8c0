"""MatryoshkaLoss against plain-Python loops over the truncated, re-normalised prefixes; truncation
of embeddings (encode, predict, the SavedModel) against NumPy."""

import math

import keras
import numpy as np
import pytest

from keras_siamese.losses import (
    ContrastiveLoss,
    MatryoshkaLoss,
    MultipleNegativesRankingLoss,
    TripletSemiHardLoss,
    truncate_embeddings,
)
from keras_siamese.losses.matryoshka import check_matryoshka_dims, check_truncate_dim
from tests.losses import oracles


def prefix(vector, dim):
    """The first `dim` entries of a list, scaled to unit length (a zero prefix stays zero)."""
    head = [float(x) for x in vector[:dim]]
    norm = math.sqrt(sum(x * x for x in head))
    return [x / norm for x in head] if norm > 0 else head


def test_truncation_is_the_renormalised_prefix():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(7, 12)).astype(np.float32)
    embeddings[3, :5] = 0.0  # a zero prefix: no NaN
    got = truncate_embeddings(embeddings, 5).numpy()
    want = [prefix(row, 5) for row in embeddings.tolist()]
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert got.dtype == np.float32 and np.all(np.isfinite(got))


@pytest.mark.parametrize(
    "dims,weights", [((2, 4, 8), None), ((3, 8), (0.5, 2.0)), ((8, 3), (2.0, 0.5)), ((8, 2, 4), (1.0, 3.0, 0.5)), ((8,), None)]
)
def test_semihard_matryoshka_is_the_weighted_sum_over_prefixes(dims, weights):
    rng = np.random.default_rng(len(dims))
    labels = rng.integers(0, 4, size=20)
    embeddings = rng.normal(size=(20, 8)).astype(np.float32)
    want = 0.0
    for dim, weight in zip(dims, weights or [1.0] * len(dims)):
        truncated = [prefix(row, dim) for row in embeddings.tolist()]
        want += weight * oracles.semihard(labels.tolist(), oracles.distance_matrix(truncated, "L2"), 0.5)
    got = MatryoshkaLoss(TripletSemiHardLoss(margin=0.5), dims=dims, weights=weights)(labels, embeddings)
    assert float(got) == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_ranking_and_pair_losses_see_truncated_rows_of_every_text():
    rng = np.random.default_rng(1)
    pairs = rng.normal(size=(6, 3, 10)).astype(np.float32)  # anchor, positive, one hard negative
    want = 0.0
    for dim in (4, 10):
        rows = [[prefix(text, dim) for text in row] for row in pairs.tolist()]
        anchors = [row[0] for row in rows]
        candidates = [row[1] for row in rows] + [row[2] for row in rows]
        want += oracles.multiple_negatives_ranking(anchors, candidates, 20.0, False)
    got = MatryoshkaLoss(MultipleNegativesRankingLoss(), dims=(4, 10))(np.zeros(6), pairs)
    assert float(got) == pytest.approx(want, rel=1e-5)

    labels = rng.integers(0, 2, size=6).astype(np.float32)
    want = 0.0
    for dim in (4, 10):
        first = [prefix(row, dim) for row in pairs[:, 0].tolist()]
        second = [prefix(row, dim) for row in pairs[:, 1].tolist()]
        want += oracles.contrastive(labels.tolist(), first, second, 0.5, "cosine")
    got = MatryoshkaLoss(ContrastiveLoss(margin=0.5), dims=(4, 10))(labels, pairs[:, :2])
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_a_cached_matryoshka_step_gives_the_weights_of_the_uncached_step(tiny_encoder_factory, glosses):
    from keras_siamese.models import TripletSemiHard

    texts, labels = glosses
    rows = np.concatenate([np.flatnonzero(labels == label)[:4] for label in np.unique(labels)[:4]])
    weights = []
    for mini_batch_size in (None, 5):
        keras.utils.set_random_seed(0)
        model = TripletSemiHard.from_encoder(tiny_encoder_factory(), mini_batch_size=mini_batch_size)
        loss = MatryoshkaLoss(TripletSemiHardLoss(margin=0.5), dims=(8, 16, 32))
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
        model.fit(np.array([texts[row] for row in rows], object), labels[rows], batch_size=16, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    assert max(float(np.abs(a - b).max()) for a, b in zip(*weights)) < 1e-5


def test_round_trip_keeps_the_wrapped_loss_dims_and_weights():
    loss = MatryoshkaLoss(MultipleNegativesRankingLoss(scale=10.0), dims=(2, 4), weights=(1.0, 0.5))
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert restored.get_config() == loss.get_config()
    assert isinstance(restored.loss, MultipleNegativesRankingLoss) and restored.loss.scale == 10.0
    pairs = np.random.default_rng(2).normal(size=(4, 2, 4)).astype(np.float32)
    assert float(restored(np.zeros(4), pairs)) == pytest.approx(float(loss(np.zeros(4), pairs)))


@pytest.mark.parametrize(
    "dims,words",
    [((), "non-empty"), ((8, 8), r"each size once, got \(8, 8\) \(8 repeated\)"),
     ((16, 4, 16), r"each size once, got \(16, 4, 16\) \(16 repeated\)"), ((0, 8), "positive"),
     ((2.5,), "positive"), ("64", "positive"), ((16, 8), "beyond the embedding's 12")],
)
def test_bad_dims_are_refused_naming_the_value(dims, words):
    with pytest.raises(ValueError, match=words):
        if "beyond" in words:
            MatryoshkaLoss(TripletSemiHardLoss(), dims=dims)(np.zeros(4), np.ones((4, 12), np.float32))
        else:
            MatryoshkaLoss(TripletSemiHardLoss(), dims=dims)


def test_bad_weights_and_truncate_dims_are_refused():
    with pytest.raises(ValueError, match="2 finite non-negative numbers"):
        MatryoshkaLoss(TripletSemiHardLoss(), dims=(4, 8), weights=(1.0,))
    with pytest.raises(ValueError, match="finite non-negative"):
        MatryoshkaLoss(TripletSemiHardLoss(), dims=(4,), weights=(-1.0,))
    with pytest.raises(ValueError, match="loss must be"):
        MatryoshkaLoss("triplet", dims=(4,))
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="truncate_dim must be a positive integer"):
            check_truncate_dim(bad, 8)
    with pytest.raises(ValueError, match="truncate_dim 9 is larger than the embedding's 8"):
        check_truncate_dim(9, 8)
    assert check_matryoshka_dims([4, 8], 8) == (4, 8)


def test_dims_in_any_order_are_sorted_with_their_weights():
    assert check_matryoshka_dims([384, 64, 128], 384) == (64, 128, 384)
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 4, size=16)
    embeddings = rng.normal(size=(16, 384)).astype(np.float32)
    largest_first = MatryoshkaLoss(TripletSemiHardLoss(margin=0.5), dims=(384, 64), weights=(1, 2))
    smallest_first = MatryoshkaLoss(TripletSemiHardLoss(margin=0.5), dims=(64, 384), weights=(2, 1))
    assert (largest_first.dims, largest_first.weights) == ((64, 384), (2.0, 1.0))
    assert float(largest_first(labels, embeddings)) == float(smallest_first(labels, embeddings))
    assert largest_first.get_config()["dims"] == [64, 384]
