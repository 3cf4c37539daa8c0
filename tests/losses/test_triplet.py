"""Triplet losses against plain-Python loops (tests/losses/oracles.py)."""

import importlib.util

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.losses import triplet
from keras_siamese.losses.distances import check_labels
from keras_siamese.losses.semihard_mining import MiningBlocks, semihard_sums
from keras_siamese.losses.triplet import (
    TripletBatchAllLoss,
    TripletBatchHardLoss,
    TripletSemiHardLoss,
    semihard_triplet_terms,
    triplet_batch_all_loss,
    triplet_batch_hard_loss,
    triplet_semihard_loss,
)
from tests.harness import check_bad_input
from tests.losses import oracles


DISTANCES = ["L2", "squared-L2", "angular"]


def label_layout(layout, batch, rng):
    if layout == "pk":  # P classes x K examples, K = 4 (last class may be short)
        return np.arange(batch) // 4
    if layout == "skewed":  # one class holds half the batch
        return np.where(np.arange(batch) < batch // 2, 0, 1 + np.arange(batch) // 3)
    if layout == "distinct":
        return np.arange(batch)
    if layout == "single":
        return np.zeros(batch, int)
    if layout == "random":
        return rng.integers(0, 3, batch)
    raise ValueError(layout)


def make_batch(layout, batch, seed, ties=False, dim=4):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(label_layout(layout, batch, rng))
    embeddings = rng.normal(size=(batch, dim)).astype(np.float32)
    if ties:  # small integer grid: many equal distances, duplicate embeddings
        embeddings = rng.integers(-1, 2, size=(batch, dim)).astype(np.float32)
        embeddings[np.all(embeddings == 0, axis=1)] = 1.0
    return labels, embeddings


def oracle_distances(embeddings, distance):
    return oracles.distance_matrix(embeddings, distance)


CASES = [
    (layout, batch, ties)
    for layout in ["pk", "skewed", "distinct", "single", "random"]
    for batch in [2, 5, 16, 33]
    for ties in [False, True]
]


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("layout,batch,ties", CASES)
def test_semihard_matches_loop(layout, batch, ties, distance):
    labels, embeddings = make_batch(layout, batch, seed=batch, ties=ties)
    # Ties are decided on the float32 distances both sides use.
    dist = triplet.pairwise_distance(embeddings, distance).numpy().astype(float).tolist()
    want = oracles.semihard(list(labels), dist, 1.0)
    assert float(triplet_semihard_loss(labels, embeddings, 1.0, distance)) == pytest.approx(
        want, rel=1e-5, abs=1e-5
    )
    if not ties:  # the loop's own distances, independent of pairwise_distance
        want = oracles.semihard(list(labels), oracle_distances(embeddings, distance), 1.0)
        assert float(triplet_semihard_loss(labels, embeddings, 1.0, distance)) == pytest.approx(
            want, rel=1e-5, abs=1e-5
        )


SORTING_ONLY = MiningBlocks(max_direct_class_size=1)  # every anchor takes the sorting engine


def semihard_loss_mined_with(blocks, labels, embeddings, margin):
    """The semi-hard loss (hinge sum over pairs) mined in `blocks`, on L2 distances."""
    labels = check_labels(tf.convert_to_tensor(labels), int(labels.shape[0]))
    sums = semihard_sums(labels, triplet.pairwise_distance(embeddings), tf.constant(margin, tf.float32), blocks)
    return sums.hinge / tf.maximum(sums.pairs, 1.0)


@pytest.mark.parametrize("layout", ["pk", "skewed", "random"])
def test_semihard_sorting_path_matches_loop(layout):
    """The sort-based engine (normally for classes over 12 examples) on every anchor."""
    for seed, ties in [(0, False), (1, True), (2, True)]:
        labels, embeddings = make_batch(layout, 37, seed, ties)
        dist = triplet.pairwise_distance(embeddings).numpy().astype(float).tolist()
        want = oracles.semihard(list(labels), dist, 0.7)
        got = semihard_loss_mined_with(SORTING_ONLY, labels, tf.constant(embeddings), 0.7)
        assert float(got) == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_semihard_sorting_path_in_every_execution_mode(mode):
    """Sorting blocks of 8 anchors (the last one padded), eagerly, traced, or all under XLA."""
    blocks = MiningBlocks(rows_per_sorting_block=8, max_direct_class_size=1)
    labels, embeddings = make_batch("random", 21, seed=6, dim=3)

    def loss_and_gradient(labels, embeddings):
        with tf.GradientTape() as tape:
            tape.watch(embeddings)
            loss = semihard_loss_mined_with(blocks, labels, embeddings, 0.5)
        return loss, tape.gradient(loss, embeddings)

    if mode != "eager":
        loss_and_gradient = tf.function(loss_and_gradient, jit_compile=mode == "xla")
    loss, gradient = loss_and_gradient(tf.constant(labels), tf.constant(embeddings))
    oracle = lambda e: oracles.semihard(list(labels), oracle_distances(e, "L2"), 0.5)  # noqa: E731
    assert float(loss) == pytest.approx(oracle(embeddings), abs=1e-5)
    np.testing.assert_allclose(gradient.numpy(), numeric_gradient(oracle, embeddings), atol=2e-3)


def test_semihard_spanning_several_blocks():
    labels, embeddings = make_batch("skewed", 50, seed=3)
    dist = oracle_distances(embeddings, "L2")
    got = semihard_loss_mined_with(MiningBlocks(rows_per_block=8), labels, tf.constant(embeddings), 1.0)
    assert float(got) == pytest.approx(oracles.semihard(list(labels), dist, 1.0), abs=1e-5)


def test_semihard_terms_statistics():
    labels, embeddings = make_batch("random", 20, seed=5)
    dist = oracle_distances(embeddings, "L2")
    terms = semihard_triplet_terms(labels, embeddings, margin=0.5)
    pairs = [(a, p) for a in range(20) for p in range(20) if a != p and labels[a] == labels[p]]
    d_an = [oracles.semihard_negative(list(labels), dist, a, p) for a, p in pairs]
    hinge = [max(0.5 + dist[a][p] - n, 0.0) for (a, p), n in zip(pairs, d_an)]
    assert int(terms.num_pairs) == len(pairs)
    assert float(terms.active_fraction) == pytest.approx(sum(h > 0 for h in hinge) / len(pairs))
    assert float(terms.mean_positive_distance) == pytest.approx(
        sum(dist[a][p] for a, p in pairs) / len(pairs), rel=1e-5
    )
    assert float(terms.mean_negative_distance) == pytest.approx(sum(d_an) / len(pairs), rel=1e-5)
    assert float(terms.loss) == pytest.approx(sum(hinge) / len(pairs), rel=1e-5)


def test_whole_batch_one_class_uses_zero_negative_distance():
    """TFA's masked maximum over no negatives is the row minimum, 0: loss = margin + mean d_ap."""
    labels, embeddings = make_batch("single", 6, seed=1)
    dist = oracle_distances(embeddings, "L2")
    mean_d_ap = sum(dist[a][p] for a in range(6) for p in range(6) if a != p) / 30
    assert float(triplet_semihard_loss(labels, embeddings, 1.0)) == pytest.approx(1.0 + mean_d_ap, rel=1e-5)


@pytest.mark.parametrize(
    "loss_fn", [triplet_semihard_loss, triplet_batch_hard_loss, triplet_batch_all_loss]
)
def test_no_positive_pair_gives_zero_loss_and_zero_gradients(loss_fn):
    labels, embeddings = make_batch("distinct", 8, seed=0)
    embeddings = tf.constant(embeddings)
    with tf.GradientTape() as tape:
        tape.watch(embeddings)
        loss = loss_fn(labels, embeddings)
    gradient = tape.gradient(loss, embeddings)
    assert float(loss) == 0.0
    assert gradient is not None and np.all(gradient.numpy() == 0.0)


def numeric_gradient(fn, x, eps=1e-5):
    x = x.astype(np.float64)
    grad = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[index] += eps
        down[index] -= eps
        grad[index] = (fn(up) - fn(down)) / (2 * eps)
    return grad


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("layout", ["pk", "skewed"])
def test_semihard_gradient_matches_finite_differences_of_the_loop(distance, layout):
    labels, embeddings = make_batch(layout, 12, seed=7, dim=3)
    tensor = tf.constant(embeddings)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        loss = triplet_semihard_loss(labels, tensor, 1.0, distance)
    got = tape.gradient(loss, tensor).numpy()
    want = numeric_gradient(
        lambda e: oracles.semihard(list(labels), oracle_distances(e, distance), 1.0), embeddings
    )
    np.testing.assert_allclose(got, want, atol=2e-3)


@pytest.mark.parametrize("loss_fn", [triplet_semihard_loss, triplet_batch_hard_loss, triplet_batch_all_loss])
@pytest.mark.parametrize("distance", DISTANCES)
def test_gradients_finite_with_duplicate_embeddings(loss_fn, distance):
    labels, embeddings = make_batch("random", 16, seed=2, ties=True)
    embeddings = tf.constant(embeddings)
    with tf.GradientTape() as tape:
        tape.watch(embeddings)
        loss = loss_fn(labels, embeddings, distance=distance)
    gradient = tape.gradient(loss, embeddings)
    assert np.all(np.isfinite(gradient.numpy()))


@pytest.mark.parametrize("soft_margin", [False, True])
@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("layout,batch,ties", CASES[::3])
def test_batch_hard_matches_loop(layout, batch, ties, distance, soft_margin):
    labels, embeddings = make_batch(layout, batch, seed=batch + 1, ties=ties)
    want = oracles.batch_hard(list(labels), oracle_distances(embeddings, distance), 0.8, soft_margin)
    got = triplet_batch_hard_loss(labels, embeddings, 0.8, soft_margin, distance)
    assert float(got) == pytest.approx(want, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("layout,batch,ties", CASES[1::3])
def test_batch_all_matches_loop(layout, batch, ties, distance):
    labels, embeddings = make_batch(layout, batch, seed=batch + 2, ties=ties)
    dist = triplet.pairwise_distance(embeddings, distance).numpy().astype(float).tolist()
    want = oracles.batch_all(list(labels), dist, 1.0)
    assert float(triplet_batch_all_loss(labels, embeddings, 1.0, distance)) == pytest.approx(
        want, rel=1e-5, abs=1e-5
    )


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("layout", ["pk", "skewed", "single", "distinct"])
def test_compiled_functions_match_eager(layout, jit_compile):
    labels, embeddings = make_batch(layout, 24, seed=11)

    @tf.function(jit_compile=jit_compile)
    def losses(labels, embeddings):
        with tf.GradientTape() as tape:
            tape.watch(embeddings)
            semihard = triplet_semihard_loss(labels, embeddings)
        return (
            semihard,
            tape.gradient(semihard, embeddings),
            triplet_batch_hard_loss(labels, embeddings, soft_margin=True),
            triplet_batch_all_loss(labels, embeddings),
        )

    semihard, gradient, hard, all_ = losses(tf.constant(labels), tf.constant(embeddings))
    dist = oracle_distances(embeddings, "L2")
    assert float(semihard) == pytest.approx(oracles.semihard(list(labels), dist, 1.0), abs=1e-5)
    assert float(hard) == pytest.approx(oracles.batch_hard(list(labels), dist, 1.0, True), abs=1e-5)
    assert float(all_) == pytest.approx(oracles.batch_all(list(labels), dist, 1.0), abs=1e-5)
    assert np.all(np.isfinite(gradient.numpy()))


def test_unknown_batch_size_in_tf_function():
    spec = [tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, 4], tf.float32)]
    fn = tf.function(triplet_semihard_loss, input_signature=spec)
    labels, embeddings = make_batch("pk", 20, seed=4)
    want = oracles.semihard(list(labels), oracle_distances(embeddings, "L2"), 1.0)
    assert float(fn(labels.astype(np.int32), embeddings)) == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
@pytest.mark.parametrize("loss_fn", [triplet_semihard_loss, triplet_batch_hard_loss, triplet_batch_all_loss])
def test_low_precision_embeddings_computed_in_float32(loss_fn, dtype):
    labels, embeddings = make_batch("pk", 16, seed=9)
    low = tf.cast(embeddings, dtype)
    rounded = tf.cast(low, tf.float32).numpy()  # the values the loss actually sees
    loss = loss_fn(labels, low)
    assert loss.dtype == dtype
    want = float(tf.cast(loss_fn(labels, rounded), dtype))
    assert float(loss) == want


@pytest.mark.parametrize(
    "labels",
    [
        np.arange(8) // 2,
        (np.arange(8) // 2)[:, None],
        (np.arange(8) // 2).astype(np.float32),
        (np.arange(8) // 2).astype(np.uint8),
    ],
)
def test_label_forms(labels):
    _, embeddings = make_batch("pk", 8, seed=1)
    want = oracles.semihard(list(np.arange(8) // 2), oracle_distances(embeddings, "L2"), 1.0)
    assert float(triplet_semihard_loss(labels, embeddings)) == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize(
    "labels,embeddings,message",
    [
        (np.zeros((4, 2)), np.ones((4, 3)), r"shape \[B\] or \[B, 1\]"),
        (np.array([0.0, 0.5, 1.0, 1.0]), np.ones((4, 3)), "whole numbers"),
        (np.zeros(3), np.ones((4, 3)), "batch size"),
        (np.zeros(4), np.ones((4, 3, 1)), "rank 2"),
        (np.zeros(4), np.array([[np.nan, 0.0]] * 4), "NaN"),
        (np.zeros(4), np.zeros((4, 3), np.int32), "float"),
    ],
)
@pytest.mark.parametrize("loss_fn", [triplet_semihard_loss, triplet_batch_hard_loss, triplet_batch_all_loss])
def test_bad_inputs_raise_value_error(loss_fn, labels, embeddings, message):
    with pytest.raises(ValueError, match=message):
        loss_fn(labels, embeddings)


def test_unknown_distance_raises():
    with pytest.raises(ValueError, match="Unknown distance"):
        triplet_semihard_loss([0, 0], [[0.0], [1.0]], distance="cosine")
    with pytest.raises(ValueError, match="Unknown distance"):
        TripletSemiHardLoss(distance="manhattan")


LABELS = [0, 1, 0, 1]
EMBEDDINGS = [[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0]]
BAD_INPUT = {
    "semi-hard margin negative": (lambda: triplet_semihard_loss(LABELS, EMBEDDINGS, margin=-1.0),
                                  ValueError, "margin must be a finite number >= 0, got -1.0"),
    "semi-hard margin NaN": (lambda: triplet_semihard_loss(LABELS, EMBEDDINGS, margin=float("nan")),
                             ValueError, "margin must be a finite number >= 0, got nan"),
    "semi-hard margin string": (lambda: triplet_semihard_loss(LABELS, EMBEDDINGS, margin="1"),
                                ValueError, "margin must be a finite number >= 0, got '1'"),
    "batch-hard margin infinite": (lambda: triplet_batch_hard_loss(LABELS, EMBEDDINGS, margin=float("inf")),
                                   ValueError, "margin must be a finite number >= 0, got inf"),
    "batch-all margin bool": (lambda: triplet_batch_all_loss(LABELS, EMBEDDINGS, margin=True),
                              ValueError, "margin must be a finite number >= 0, got True"),
    "TripletSemiHardLoss margin": (lambda: TripletSemiHardLoss(margin=-0.1), ValueError, "got -0.1"),
    "TripletBatchHardLoss margin": (lambda: TripletBatchHardLoss(margin=None), ValueError, "got None"),
    "TripletBatchAllLoss margin": (lambda: TripletBatchAllLoss(margin="wide"), ValueError, "got 'wide'"),
    "unknown triplet distance": (lambda: triplet_semihard_loss(LABELS, EMBEDDINGS, distance="manhattan"),
                                 ValueError, "Unknown distance 'manhattan'"),
    "string labels to a loss": (lambda: triplet_semihard_loss(["a", "b", "a", "b"], EMBEDDINGS),
                                ValueError, "labels must be integers, got dtype string"),
    "labels of rank 3": (lambda: triplet_semihard_loss(np.zeros((4, 1, 1), "int32"), EMBEDDINGS),
                         ValueError, "labels must have shape [B] or [B, 1]"),
    "NaN embeddings": (lambda: triplet_semihard_loss(LABELS, [[np.nan, 0.0]] + EMBEDDINGS[1:]),
                       ValueError, "embeddings contain NaN or infinite values"),
    "integer embeddings": (lambda: triplet_semihard_loss(LABELS, np.ones((4, 2), "int32")),
                           ValueError, "embeddings must be a float tensor, got dtype int32"),
    "embeddings of rank 1": (lambda: triplet_semihard_loss(LABELS, [0.0, 1.0, 2.0, 3.0]),
                             ValueError, "embeddings must have rank 2"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])


def test_nan_embeddings_fail_inside_tf_function():
    fn = tf.function(triplet_semihard_loss)
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN"):
        fn(tf.constant([0, 0]), tf.constant([[np.nan], [1.0]]))


def test_empty_batch_gives_zero():
    assert float(triplet_semihard_loss(np.zeros([0], int), np.zeros([0, 3], np.float32))) == 0.0


def test_callable_distance():
    labels, embeddings = make_batch("pk", 12, seed=6)
    manhattan = lambda e: tf.reduce_sum(tf.abs(e[:, None] - e[None, :]), axis=2)  # noqa: E731
    dist = [[float(np.abs(a - b).sum()) for b in embeddings] for a in embeddings]
    assert float(triplet_semihard_loss(labels, embeddings, distance=manhattan)) == pytest.approx(
        oracles.semihard(list(labels), dist, 1.0), rel=1e-5
    )


@pytest.mark.parametrize(
    "cls,kwargs",
    [
        (TripletSemiHardLoss, {"margin": 0.3, "distance": "angular"}),
        (TripletBatchHardLoss, {"margin": 0.2, "soft_margin": True, "distance": "squared-L2"}),
        (TripletBatchAllLoss, {"margin": 0.4, "distance": "L2"}),
    ],
)
def test_keras_loss_config_round_trip_and_value(cls, kwargs):
    loss = cls(name="mine", **kwargs)
    config = keras.saving.serialize_keras_object(loss)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is cls and restored.get_config() == loss.get_config()
    assert restored.name == "mine"
    labels, embeddings = make_batch("pk", 12, seed=8)
    dist = oracle_distances(embeddings, kwargs["distance"])
    if cls is TripletSemiHardLoss:
        want = oracles.semihard(list(labels), dist, kwargs["margin"])
    elif cls is TripletBatchHardLoss:
        want = oracles.batch_hard(list(labels), dist, kwargs["margin"], kwargs["soft_margin"])
    else:
        want = oracles.batch_all(list(labels), dist, kwargs["margin"])
    # Keras casts y_true to float32: labels arrive as whole-number floats.
    assert float(restored(labels[:, None], embeddings)) == pytest.approx(want, rel=1e-5)


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None
    or importlib.util.find_spec("sentence_transformers") is None,
    reason="torch and sentence_transformers are not installed (see benchmarks/make_peer_venvs.sh)",
)
def test_semihard_matches_sentence_transformers():
    import torch
    from sentence_transformers.losses import BatchSemiHardTripletLoss

    peer = BatchSemiHardTripletLoss(model=None, margin=1.0)
    for layout in ["pk", "skewed", "random"]:
        labels, embeddings = make_batch(layout, 32, seed=12)
        want = peer.batch_semi_hard_triplet_loss(torch.tensor(labels), torch.tensor(embeddings))
        got = triplet_semihard_loss(labels, embeddings, 1.0)
        assert float(got) == pytest.approx(float(want), rel=1e-5)


def test_eager_calls_on_batches_of_many_sizes_do_not_warn_of_retracing(caplog):
    rng = np.random.default_rng(7)
    with caplog.at_level("WARNING", logger="tensorflow"):
        for batch in range(6, 80, 7):  # classes of 2 (direct mining) and of up to 40 (sorting)
            labels = rng.integers(0, 2 if batch > 40 else 3, batch)
            loss = triplet_semihard_loss(labels, rng.normal(size=(batch, 8)).astype("float32"))
            assert np.isfinite(float(loss))
    assert not [record for record in caplog.records if "retracing" in record.getMessage()]
