"""Argument checks shared across the package: one test and one wording for each kind of value."""

import numbers


def is_integer(value):
    """Whether `value` is an integer (numpy's too); `True` and `False` are not.

    Example:
    >>> is_integer(3), is_integer(True), is_integer(3.0)
    (True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value):
    """Whether `value` is a real number (numpy's too); booleans and strings are not.

    Example:
    >>> is_number(0.5), is_number("0.5"), is_number(False)
    (True, False, False)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_integer(value, name, minimum=1):
    """`int(value)` if `value` is an integer >= `minimum`; otherwise a ValueError naming it.

    Example:
    >>> check_integer(0, "epochs")
    Traceback (most recent call last):
    ...
    ValueError: epochs must be a positive integer, got 0.
    """
    if not is_integer(value) or value < minimum:
        wanted = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
        raise ValueError(f"{name} must be {wanted}, got {value!r}.")
    return int(value)


def check_ks(ks):
    """Rank cut-offs (one integer or a sequence of them) as a tuple of positive ints; a ValueError otherwise.

    Example:
    >>> check_ks(5), check_ks([1, 10])
    ((5,), (1, 10))
    """
    try:
        ks = (ks,) if isinstance(ks, (numbers.Number, str, bytes)) else tuple(ks)
    except TypeError:
        ks = (ks,)  # not a sequence: reported below as a bad cut-off
    if not ks:
        raise ValueError("ks is empty; give at least one cut-off such as (1, 5).")
    for k in ks:
        if not is_integer(k) or k < 1:
            raise ValueError(f"ks must be positive integers, got {k!r}.")
    return tuple(int(k) for k in ks)
