import collections

import numpy as np
import pytest

from keras_siamese.data.pairs import PairSampler, anchor_positive_batches, pair_batches
from tests.harness import check_bad_input


def _corpus():
    labels = [0] * 10 + [1] * 6 + [2] * 4 + [3] * 3 + [4] * 8 + [5]
    return [f"t{i}" for i in range(len(labels))], labels


@pytest.mark.parametrize("fraction, positives", [(0.5, 4), (0.25, 2), (0.0, 0), (1.0, 8)])
def test_pair_targets_match_the_labels_and_the_positive_fraction(fraction, positives):
    texts, labels = _corpus()
    label_of = dict(zip(texts, labels))
    dataset = pair_batches(texts, labels, batch_size=8, positive_fraction=fraction, seed=0)
    for (text_a, text_b), same in dataset:
        assert same.dtype.name == "float32"
        assert same.numpy().sum() == positives
        for a, b, s in zip(text_a.numpy(), text_b.numpy(), same.numpy()):
            assert a != b
            assert s == float(label_of[a.decode()] == label_of[b.decode()])


def test_positive_places_vary_and_are_reproducible():
    texts, labels = _corpus()
    first = PairSampler(labels, 8, seed=4).epoch_indices(0)[1]
    np.testing.assert_array_equal(first, PairSampler(labels, 8, seed=4).epoch_indices(0)[1])
    assert len({tuple(row) for row in first}) > 1


def test_anchor_positive_batches_have_distinct_labels_and_texts():
    texts, labels = _corpus()
    texts[1] = texts[0]  # a duplicate under one label: counts once
    texts[12] = texts[25]  # a text under labels 1 and 4: left out
    label_of = dict(zip(texts, labels))
    dataset = anchor_positive_batches(texts, labels, batch_size=4, seed=0)
    seen = set()
    for _ in range(5):
        for (anchor, positive), batch_labels in dataset:
            batch = [t.decode() for t in anchor.numpy()] + [t.decode() for t in positive.numpy()]
            assert len(set(batch)) == 8
            assert len(set(batch_labels.numpy().tolist())) == 4
            for a, p, y in zip(anchor.numpy(), positive.numpy(), batch_labels.numpy()):
                assert label_of[a.decode()] == label_of[p.decode()] == y
            seen.update(batch)
    assert texts[12] not in seen and texts[25] not in seen and texts[5] in seen
    assert collections.Counter(texts)[texts[0]] == 2 and texts[0] in seen


def test_anchor_positive_batch_size_cannot_exceed_usable_labels():
    texts, labels = _corpus()
    with pytest.raises(ValueError, match="exceeds the 5 labels"):
        anchor_positive_batches(texts, labels, batch_size=6)


@pytest.mark.parametrize("fraction", [-0.1, 1.5, "half", True])
def test_bad_positive_fraction(fraction):
    texts, labels = _corpus()
    with pytest.raises(ValueError, match="positive_fraction"):
        pair_batches(texts, labels, batch_size=4, positive_fraction=fraction)


TEXTS = [f"text {i} of class {i % 3}" for i in range(30)]
TEXT_LABELS = [i % 3 for i in range(30)]
BAD_INPUT = {
    "pair batch of 0": (lambda: pair_batches(TEXTS, TEXT_LABELS, batch_size=0), ValueError, "batch_size"),
    "positive_fraction 1.5": (lambda: pair_batches(TEXTS, TEXT_LABELS, positive_fraction=1.5), ValueError,
                              "positive_fraction must be a number in [0, 1], got 1.5"),
    "anchor-positive batch of 1": (lambda: anchor_positive_batches(TEXTS, TEXT_LABELS, batch_size=1),
                                   ValueError, "batch_size must be an integer >= 2, got 1"),
    "anchor-positive batch over the labels": (lambda: anchor_positive_batches(TEXTS, TEXT_LABELS, 4),
                                              ValueError, "batch_size=4 exceeds the 3 labels with >= 2"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])


@pytest.mark.parametrize("make", [
    lambda texts, labels, context: pair_batches(texts, labels, 8, seed=2, input_context=context),
    lambda texts, labels, context: anchor_positive_batches(texts, labels, 4, seed=2, input_context=context),
], ids=["pairs", "anchor_positive"])
def test_every_replica_gets_its_slice_of_the_same_global_pair_batches(make):
    """2 pipelines x 2 replicas: replica r's element at step s is rows [r * n, (r + 1) * n) of global batch s."""
    import tensorflow as tf

    texts, labels = _corpus()
    rows = lambda element: [np.asarray(column).tolist() for column in tf.nest.flatten(element)]  # noqa: E731
    whole = [rows(element) for element in make(texts, labels, None)]
    per_replica = len(whole[0][0]) // 4
    for pipeline in range(2):
        dataset = make(texts, labels, tf.distribute.InputContext(2, pipeline, num_replicas_in_sync=4))
        assert dataset.epoch_position.batches_per_epoch == len(whole) and int(dataset.cardinality()) == 2 * len(whole)
        for position, element in enumerate(dataset):
            step, local = divmod(position, 2)
            replica = 2 * pipeline + local
            expected = [column[replica * per_replica : (replica + 1) * per_replica] for column in whole[step]]
            assert rows(element) == expected
