import numpy as np
import pytest

from keras_siamese.data.labels import check_corpus, encode_labels


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
