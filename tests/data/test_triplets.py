import collections

import numpy as np
import pytest

from keras_siamese.data.triplets import TripletSampler, triplet_batches
from tests.harness import check_bad_input


def _corpus():
    labels = [0] * 12 + [1] * 5 + [2] * 2 + [3] + [4] * 9
    return [f"t{i}" for i in range(len(labels))], labels


def test_positive_shares_the_anchor_label_and_negative_does_not():
    texts, labels = _corpus()
    label_of = dict(zip(texts, labels))
    dataset = triplet_batches(texts, labels, batch_size=4, seed=3)
    assert dataset.cardinality().numpy() == 28 // 4  # anchors: all but the single-text class
    for _ in range(3):  # three epochs
        for (anchor, positive, negative), anchor_labels in dataset:
            for a, p, n, y in zip(anchor.numpy(), positive.numpy(), negative.numpy(), anchor_labels.numpy()):
                a, p, n = a.decode(), p.decode(), n.decode()
                assert a != p
                assert label_of[a] == label_of[p] == y
                assert label_of[n] != label_of[a]


def test_each_anchor_once_per_epoch_and_negatives_reach_every_other_class():
    texts, labels = _corpus()
    sampler = TripletSampler(labels, batch_size=4, seed=0)
    triplets = sampler.epoch_indices(0).reshape(-1, 3)
    assert sorted(triplets[:, 0].tolist()) == [i for i in range(len(labels)) if labels[i] != 3]
    many = np.concatenate([sampler.epoch_indices(e).reshape(-1, 3) for e in range(50)])
    negative_classes = collections.Counter(np.asarray(labels)[many[:, 2]].tolist())
    assert set(negative_classes) == {0, 1, 2, 3, 4}


def test_same_seed_same_triplets():
    texts, labels = _corpus()
    a = TripletSampler(labels, 4, seed=1).epoch_indices(2)
    np.testing.assert_array_equal(a, TripletSampler(labels, 4, seed=1).epoch_indices(2))
    assert not np.array_equal(a, TripletSampler(labels, 4, seed=2).epoch_indices(2))


@pytest.mark.parametrize(
    "labels, kwargs, message",
    [
        ([0, 0, 0], {}, "at least 2 classes"),
        ([0, 1, 2], {}, "at least 2 texts"),
        ([0, 0, 1], {"batch_size": 0}, "batch_size"),
        ([0, 0, 1], {"texts": ["a"]}, "differ in length"),
    ],
)
def test_bad_input(labels, kwargs, message):
    kwargs = {"texts": [str(i) for i in range(len(labels))], "batch_size": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        triplet_batches(labels=labels, **kwargs)


TEXTS = [f"text {i} of class {i % 3}" for i in range(30)]
TEXT_LABELS = [i % 3 for i in range(30)]
BAD_INPUT = {
    "triplet batch of 0": (lambda: triplet_batches(TEXTS, TEXT_LABELS, batch_size=0), ValueError,
                           "batch_size must be a positive integer, got 0"),
    "triplets of one class": (lambda: triplet_batches(TEXTS, [0] * 30), ValueError,
                              "triplets need at least 2 classes, found 1"),
    "triplets without a pair": (lambda: triplet_batches(["a", "b"], [0, 1]), ValueError,
                                "triplets need a class with at least 2 texts, found none"),
    "epoch negative": (lambda: TripletSampler(TEXT_LABELS, 2).epoch_indices(-1), ValueError,
                       "epoch must be a non-negative integer, got -1"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
