import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.data import HardNegativeRefresh, TextRows, mine_hard_negatives, mine_row_negatives
from keras_siamese.search import faiss_available


def table_model(vectors):
    """Maps the text "t<i>" to vectors[i]: embeddings the test fixes in advance."""
    table = tf.constant(vectors, tf.float32)
    return lambda texts: tf.gather(table, tf.strings.to_number(tf.strings.substr(texts, 1, 9), tf.int32))


def corpus(size=60, classes=6, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(classes, size=size)
    vectors = rng.normal(size=(classes, dim))[labels] * 0.6 + rng.normal(size=(size, dim))
    return [f"t{i}" for i in range(size)], labels, vectors


def oracle_negatives(vectors, labels, anchor, positive, num_negatives, rank_range, relative_margin):
    """The definition, one anchor at a time: other-label texts by cosine to the anchor, the
    window's ranks, at most the positive's cosine less the relative margin, best first."""
    unit = [np.asarray(v, float) / np.linalg.norm(v) for v in vectors]
    cosine = [float(np.dot(unit[anchor], u)) for u in unit]
    candidates = sorted((i for i in range(len(vectors)) if labels[i] != labels[anchor]), key=lambda i: -cosine[i])
    ceiling = np.inf if relative_margin is None else cosine[positive] - relative_margin * abs(cosine[positive])
    start, stop = rank_range
    kept = [i for rank, i in enumerate(candidates) if start <= rank < stop and cosine[i] <= ceiling]
    return kept[:num_negatives] if len(kept) >= num_negatives else None


@pytest.mark.parametrize("backend", ["exact", pytest.param("faiss", marks=pytest.mark.skipif(
    not faiss_available(), reason="needs faiss-cpu"))])
def test_negatives_follow_the_definition_for_every_anchor(backend):
    texts, labels, vectors = corpus()
    settings = {"num_negatives": 2, "rank_range": (1, 6), "relative_margin": 0.1}
    mined = mine_hard_negatives(table_model(vectors), texts, labels, batch_size=7, backend=backend, **settings)
    expected_rows = {}
    for anchor in range(len(texts)):
        for positive in range(len(texts)):
            if positive != anchor and labels[positive] == labels[anchor]:
                expected_rows[anchor, positive] = oracle_negatives(vectors, labels, anchor, positive, **settings)
    assert len(set(mined.anchors.tolist())) == len(mined) >= 10  # each anchor once
    for anchor, positive, negatives in zip(mined.anchors, mined.positives, mined.negatives):
        assert negatives.tolist() == expected_rows[anchor, positive]


def test_without_margin_the_window_start_is_the_hardest_other_label_text():
    texts, labels, vectors = corpus(seed=1)
    mined = mine_hard_negatives(table_model(vectors), texts, labels, rank_range=(0, 1), relative_margin=None)
    assert len(mined) == len(texts)
    for anchor, positive, (negative,) in zip(mined.anchors, mined.positives, mined.negatives):
        assert labels[positive] == labels[anchor] and positive != anchor
        assert oracle_negatives(vectors, labels, anchor, positive, 1, (0, 1), None) == [negative]


def test_texts_repeated_under_another_label_are_never_negatives_and_single_text_labels_never_anchors():
    texts = ["t0", "t1", "t2", "t0", "t4"]
    labels = [0, 0, 1, 1, 2]
    vectors = np.eye(5)
    vectors[3] = vectors[0]
    mined = mine_hard_negatives(table_model(vectors), texts, labels, rank_range=(0, 3), relative_margin=None)
    assert 4 not in mined.anchors.tolist()
    for anchor, positive, (negative,) in zip(mined.anchors, mined.positives, mined.negatives):
        assert texts[negative] not in (texts[anchor], texts[positive])


def test_batches_hold_each_anchor_label_once_and_the_rows_texts():
    texts, labels, vectors = corpus()
    mined = mine_hard_negatives(table_model(vectors), texts, labels, num_negatives=2, rank_range=(0, 10))
    rows = {tuple(r) for r in np.concatenate([mined.anchors[:, None], mined.positives[:, None], mined.negatives], 1)}
    dataset = mined.dataset(batch_size=4, seed=3)
    assert dataset.cardinality().numpy() == len(mined) // 4
    for (anchor, positive, first, second), zeros in dataset:
        batch = [tuple(int(t[1:]) for t in row) for row in zip(*(x.numpy().astype(str) for x in (anchor, positive, first, second)))]
        assert set(batch) <= rows
        assert len({labels[row[0]] for row in batch}) == 4
        assert zeros.numpy().tolist() == [0.0] * 4
    flat_texts, flat_labels = next(iter(mined.triplet_dataset(batch_size=3)))
    assert flat_texts.shape == (12,)
    assert flat_labels.numpy().tolist() == [labels[int(t[1:])] for t in flat_texts.numpy().astype(str)]


def test_refresh_every_k_epochs_reaches_a_dataset_made_before():
    texts, labels, vectors = corpus()
    mined = mine_hard_negatives(table_model(vectors), texts, labels, rank_range=(0, 5), relative_margin=None)
    dataset = mined.dataset(batch_size=4, batches_per_epoch=20)
    before = mined.negatives.copy()
    other = table_model(np.random.default_rng(9).normal(size=vectors.shape))
    refresh = HardNegativeRefresh(mined, other, every_epochs=2)
    refresh.on_epoch_end(0)
    assert np.array_equal(mined.negatives, before)
    refresh.on_epoch_end(1)
    assert not np.array_equal(mined.negatives, before)
    rows = {tuple(r) for r in np.stack([mined.anchors, mined.positives, mined.negatives[:, 0]], 1)}
    for (anchor, positive, negative), _ in dataset:
        seen = zip(*(x.numpy().astype(str) for x in (anchor, positive, negative)))
        assert {tuple(int(t[1:]) for t in row) for row in seen} <= rows


def refuse_to_encode(texts):
    raise AssertionError("mined before checking its arguments")


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"num_negatives": 0}, "num_negatives"),
        ({"rank_range": (5, 5)}, "rank_range"),
        ({"rank_range": (-1, 3)}, "rank_range"),
        ({"rank_range": "0-30"}, "rank_range"),
        ({"rank_range": (0, 2), "num_negatives": 3}, "fewer than num_negatives=3"),
        ({"relative_margin": 1.0}, "relative_margin"),
        ({"relative_margin": float("nan")}, "relative_margin"),
        ({"backend": "annoy"}, "backend"),
        ({"batch_size": 0}, "batch_size"),
        ({"labels": [0, 0, 0, 0]}, "at least 2 labels"),
        ({"labels": [0, 1, 2, 3]}, "single distinct text"),
        ({"texts": ["t0", "t0", "t1", "t1"], "labels": [0, 0, 1, 1]}, "single distinct text"),
        ({"labels": [0, 1]}, "labels"),
    ],
)
def test_bad_arguments_fail_before_any_text_is_encoded(arguments, message):
    call = {"texts": ["t0", "t1", "t2", "t3"], "labels": [0, 0, 1, 1], **arguments}
    with pytest.raises(ValueError, match=message):
        mine_hard_negatives(refuse_to_encode, **call)


def test_a_window_beyond_the_candidates_says_it_left_no_negative():
    texts, labels, vectors = corpus(size=12, classes=2)
    with pytest.raises(ValueError, match="leaves no anchor"):
        mine_hard_negatives(table_model(vectors), texts, labels, rank_range=(50, 60))


def test_a_batch_larger_than_the_anchor_labels_is_refused():
    texts, labels, vectors = corpus()
    mined = mine_hard_negatives(table_model(vectors), texts, labels)
    with pytest.raises(ValueError, match="anchor labels"):
        mined.dataset(batch_size=7)


def test_a_refresh_that_leaves_fewer_labels_than_a_batch_says_so():
    texts, labels, vectors = corpus()
    one_hot = np.eye(8)[labels]  # positives at cosine 1, every candidate at 0
    mined = mine_hard_negatives(table_model(one_hot), texts, labels, relative_margin=0.5)
    mined.dataset(batch_size=6)
    # Label 0 at +1, the rest at -1: other labels' anchors see 40-odd candidates at cosine 1
    # (above the margin) fill the window, so only label 0 keeps anchors.
    anti_aligned = table_model(np.where(labels[:, None] == 0, 1.0, -1.0) * np.ones((1, 8)))
    with pytest.raises(ValueError, match="fewer than the batch size 6"):
        HardNegativeRefresh(mined, anti_aligned).on_epoch_end(0)


def test_negative_label_ids_and_repeated_texts_give_distinct_negative_texts():
    texts = ["t0", "t1", "t2", "t3", "t2", "t5"]
    labels = [-7, -7, 3, 3, 3, 9]  # "t2" twice under label 3
    vectors = np.array([[1, 0], [1, 0.1], [1, 0.2], [0, 1], [1, 0.2], [0.5, 0.5]])
    mined = mine_hard_negatives(table_model(vectors), texts, labels, num_negatives=2, rank_range=(0, 5),
                                relative_margin=None)
    for anchor, negatives in zip(mined.anchors, mined.negatives):
        assert len({texts[n] for n in negatives}) == 2
        assert all(mined.labels[n] != mined.labels[anchor] for n in negatives)
    with pytest.raises(ValueError, match="seed"):
        mined.dataset(batch_size=2, seed=-1)
    with pytest.raises(ValueError, match="model"):
        HardNegativeRefresh(mined, "not a model")


def test_row_negatives_follow_the_definition_for_every_pair():
    """Pairs with repeated anchors and shared positives: a negative is never any positive of its anchor."""
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(40, 6))
    anchors = [f"t{i}" for i in rng.integers(0, 15, size=30)]
    positives = [f"t{i}" for i in rng.integers(15, 40, size=30)]
    rows = TextRows(("anchor", "positive"), (anchors, positives))
    mined = mine_row_negatives(table_model(vectors), rows, num_negatives=2, rank_range=(1, 8), relative_margin=0.05)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = lambda a, b: float(unit[int(a[1:])] @ unit[int(b[1:])])  # noqa: E731
    candidates = sorted(set(positives))
    expected = []
    for anchor, positive in zip(anchors, positives):  # the definition, one row at a time
        own = {p for a, p in zip(anchors, positives) if a == anchor} | {anchor}
        ranked = sorted((c for c in candidates if c not in own), key=lambda c: -cosine(anchor, c))
        ceiling = cosine(anchor, positive) - 0.05 * abs(cosine(anchor, positive))
        kept = [c for rank, c in enumerate(ranked) if 1 <= rank < 8 and cosine(anchor, c) <= ceiling]
        if len(kept) >= 2:
            expected.append((anchor, positive, *kept[:2]))
    assert mined.columns == ("anchor", "positive", "negative_1", "negative_2")
    assert list(zip(*mined.texts)) == expected and 0 < len(expected) < 30


def test_row_negatives_refuse_labelled_texts():
    rows = TextRows(("text",), (["a", "b"],), labels=[0, 1], label_column="label")
    with pytest.raises(ValueError, match="rows must be TextRows of pairs or rows with negatives, got 'labelled texts'"):
        mine_row_negatives(table_model(np.eye(2)), rows)
