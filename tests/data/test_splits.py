import collections

import numpy as np
import pytest

from keras_siamese.data.splits import train_test_split_by_label
from tests.harness import check_bad_input


def test_split_is_stratified_disjoint_ordered_and_reproducible():
    labels = ["a"] * 50 + ["b"] * 10 + ["c"] * 2 + ["d"]
    texts = [f"t{i}" for i in range(len(labels))]
    train_texts, train_labels, test_texts, test_labels = train_test_split_by_label(texts, labels, 0.2, seed=7)
    assert sorted(train_texts + test_texts) == sorted(texts)
    assert not set(train_texts) & set(test_texts)
    assert train_texts == sorted(train_texts, key=texts.index)
    assert collections.Counter(test_labels.tolist()) == {"a": 10, "b": 2, "c": 1}
    assert "d" in train_labels.tolist()
    for text, label in zip(train_texts + test_texts, train_labels.tolist() + test_labels.tolist()):
        assert labels[texts.index(text)] == label
    again = train_test_split_by_label(texts, labels, 0.2, seed=7)
    assert again[2] == test_texts
    assert train_test_split_by_label(texts, labels, 0.2, seed=8)[2] != test_texts


@pytest.mark.parametrize("fraction", [0, 1, -0.5, "0.2"])
def test_bad_fraction(fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        train_test_split_by_label(["a", "b"], [0, 0], fraction)


TEXTS = [f"text {i} of class {i % 3}" for i in range(30)]
TEXT_LABELS = [i % 3 for i in range(30)]
BAD_INPUT = {
    "test_fraction 1": (lambda: train_test_split_by_label(TEXTS, TEXT_LABELS, 1.0), ValueError,
                        "test_fraction must be a number in (0, 1), got 1.0"),
    "test_fraction NaN": (lambda: train_test_split_by_label(TEXTS, TEXT_LABELS, float("nan")), ValueError,
                          "got nan"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])


def test_mismatched_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        train_test_split_by_label(["a", "b"], np.array([0, 0, 1]))
