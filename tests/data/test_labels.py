import numpy as np
import pytest

from keras_siamese.data import class_balanced_batches, triplet_batches
from keras_siamese.data.labels import check_corpus, encode_labels
from tests.harness import check_bad_input


def test_string_labels_map_to_sorted_names():
    ids, classes = encode_labels(np.array(["pear", "fig", "pear", "apple"]))
    assert classes == ["apple", "fig", "pear"]
    assert ids.dtype == np.int32 and [classes[i] for i in ids] == ["pear", "fig", "pear", "apple"]


def test_integer_labels_are_kept_as_given():
    ids, classes = encode_labels(np.array([7, -2, 7], dtype=np.int64))
    assert ids.tolist() == [7, -2, 7] and classes == [-2, 7]
    assert encode_labels([np.int16(3), 5])[0].tolist() == [3, 5]


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.array([2**31, 0]), "fit in int32"),
        (np.array([np.nan, 1.0]), "NaN"),
        ([1.5, 2.0], "fractional"),
        (["a", b"b"], "mix str and bytes"),
        ([None, 1], "integers or all be strings"),
        (np.zeros((2, 2)), "1-D"),
    ],
)
def test_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        encode_labels(labels)


def test_texts_must_be_strings_one_per_label():
    assert check_corpus(np.array(["x", "y"]), [0, 1])[0] == ["x", "y"]
    with pytest.raises(ValueError, match="found a NoneType"):
        check_corpus(["x", None], [0, 1])


TEXTS = [f"text {i} of class {i % 3}" for i in range(30)]
TEXT_LABELS = [i % 3 for i in range(30)]
BAD_INPUT = {
    "texts and labels differ in length": (lambda: class_balanced_batches(TEXTS, TEXT_LABELS[:-1], 3, 2),
                                          ValueError, "texts and labels differ in length: 30 texts, 29 labels"),
    "texts None": (lambda: class_balanced_batches(None, TEXT_LABELS), ValueError,
                   "texts must be a sequence of strings, got NoneType"),
    "texts that are numbers (corpus)": (lambda: triplet_batches(list(range(30)), TEXT_LABELS), ValueError,
                                        "texts must all be strings, found a int at position 0: 0"),
    "labels booleans": (lambda: encode_labels([True, False]), ValueError,
                        "labels are booleans; use integer class ids or strings"),
    "labels with a fractional part": (lambda: encode_labels([0.5, 1.0]), ValueError,
                                      "labels are floats with a fractional part"),
    "labels mixing ints and strings": (lambda: encode_labels([0, "sport"]), ValueError,
                                       "must all be integers or all be strings, got types ['int', 'str']"),
    "labels beyond int32": (lambda: encode_labels([0, 2**40]), ValueError,
                            "integer labels must fit in int32"),
    "labels of rank 2 (corpus)": (lambda: encode_labels([[0], [1]]), ValueError,
                                  "labels must be 1-D (one label per text), got shape (2, 1)"),
    "labels empty": (lambda: encode_labels([]), ValueError, "labels is empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
