import re

import numpy as np
import pytest

from keras_siamese.checks import check_integer, check_ks, is_integer, is_number


@pytest.mark.parametrize("value", [1, 2.0, True, False, "3", None, np.float32(3)])
def test_check_integer_refuses_what_is_not_an_integer_at_or_above_the_minimum(value):
    with pytest.raises(ValueError, match=re.escape(f"size must be an integer >= 2, got {value!r}.")):
        check_integer(value, "size", 2)


@pytest.mark.parametrize("minimum, wanted", [(0, "a non-negative integer"), (1, "a positive integer")])
def test_check_integer_words_its_minimum(minimum, wanted):
    with pytest.raises(ValueError, match=f"count must be {wanted}, got -1."):
        check_integer(-1, "count", minimum)


def test_check_integer_returns_python_ints_of_numpy_integers():
    checked = check_integer(np.int64(5), "count")
    assert checked == 5 and type(checked) is int


def test_booleans_and_strings_are_neither_integers_nor_numbers():
    assert [is_integer(v) for v in (3, np.int32(3), True, 3.0, "3")] == [True, True, False, False, False]
    assert [is_number(v) for v in (0.5, np.float32(0.5), 3, False, "0.5", None)] == [
        True, True, True, False, False, False]


def test_check_ks_takes_one_cut_off_or_several_as_python_ints():
    assert check_ks(np.int64(5)) == (5,) and type(check_ks(np.int64(5))[0]) is int
    assert check_ks([1, 10]) == (1, 10)
    for bad in ((0,), (1.5,), (True,), "5"):
        with pytest.raises(ValueError, match="ks must be positive integers"):
            check_ks(bad)
