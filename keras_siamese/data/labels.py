"""Validation of a labelled text corpus and encoding of its labels as int32 ids."""

import numpy as np

_INT32 = np.iinfo(np.int32)


def encode_labels(labels):
    """Checks `labels` and returns them as int32 ids with the class each id stands for.

    Accepted labels, one per text, as a 1-D sequence or array:
    - integers (any integer dtype, or whole-number floats such as `3.0`): kept as they
      are, so id `7` means label `7`; they must fit in int32.
    - strings (`str` or `bytes`): mapped to `0..C-1` in sorted order of the distinct names.
    Booleans, fractional or non-finite floats and mixed types raise a `ValueError`.

    Args:
        labels: the labels, one per text.

    Returns:
        `(ids, classes)`: `ids` an int32 array shaped like `labels`; `classes` a list of the
        distinct labels, sorted, so that for string labels `classes[ids[i]] == labels[i]`.

    Example:
    >>> ids, classes = encode_labels(["sport", "food", "sport"])
    >>> ids.tolist(), classes
    ([1, 0, 1], ['food', 'sport'])
    """
    # A list is read element by element: np.asarray([1, "a"]) would silently make strings.
    array = np.array(labels, dtype=object) if isinstance(labels, (list, tuple)) else np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be 1-D (one label per text), got shape {array.shape}.")
    if array.size == 0:
        raise ValueError("labels is empty: the corpus needs at least one labelled text.")
    if array.dtype == object:
        array = _object_labels(array)
    kind = array.dtype.kind
    if kind in "US":
        classes, ids = np.unique(array, return_inverse=True)
        return ids.astype(np.int32), classes.tolist()
    if kind == "f":
        if not np.all(np.isfinite(array)):
            raise ValueError("labels contain NaN or infinite values.")
        if not np.all(array == np.round(array)):
            raise ValueError("labels are floats with a fractional part; use integer class ids.")
    elif kind == "b":
        raise ValueError("labels are booleans; use integer class ids or strings.")
    elif kind not in "iu":
        raise ValueError(
            f"labels must be integers or strings, got dtype {array.dtype}."
        )
    if array.min() < _INT32.min or array.max() > _INT32.max:
        raise ValueError("integer labels must fit in int32.")
    ids = array.astype(np.int32)
    return ids, np.unique(ids).tolist()


def _object_labels(array):
    """Turns an object array holding only strings or only integers into a typed array."""
    values = array.tolist()
    if any(isinstance(value, (bool, np.bool_)) for value in values):
        raise ValueError("labels are booleans; use integer class ids or strings.")
    if all(isinstance(value, (str, bytes)) for value in values):
        if len({type(value) for value in values}) > 1:
            raise ValueError("labels mix str and bytes values.")
        return np.array(values)
    if all(isinstance(value, (int, np.integer)) for value in values):
        return np.array(values, dtype=np.int64)
    if all(isinstance(value, (int, float, np.integer, np.floating)) for value in values):
        return np.array(values, dtype=np.float64)
    kinds = sorted({type(value).__name__ for value in values})
    raise ValueError(f"labels must all be integers or all be strings, got types {kinds}.")


def check_texts(texts, num_labels):
    """Checks that `texts` is a non-empty sequence of strings, one per label; returns a list.

    Example:
    >>> check_texts(("a dog", "a cat"), num_labels=2)
    ['a dog', 'a cat']
    """
    if isinstance(texts, (str, bytes)):
        raise ValueError("texts must be a sequence of strings, not a single string.")
    try:
        texts = list(texts.tolist() if isinstance(texts, np.ndarray) else texts)
    except TypeError:
        raise ValueError(f"texts must be a sequence of strings, got {type(texts).__name__}.") from None
    if not texts:
        raise ValueError("texts is empty: the corpus needs at least one text.")
    if len(texts) != num_labels:
        raise ValueError(
            f"texts and labels differ in length: {len(texts)} texts, {num_labels} labels."
        )
    for position, text in enumerate(texts):
        if not isinstance(text, (str, bytes)):
            raise ValueError(
                f"texts must all be strings, found a {type(text).__name__} at position {position}: {text!r}."
            )
    return texts


def check_corpus(texts, labels):
    """Validates a labelled corpus; returns `(texts list, int32 label ids, classes)`.

    Example:
    >>> texts, ids, classes = check_corpus(["a", "b"], [3, 5])
    >>> ids.tolist(), classes
    ([3, 5], [3, 5])
    """
    if isinstance(texts, (str, bytes)):
        raise ValueError("texts must be a sequence of strings, not a single string.")
    ids, classes = encode_labels(labels)
    return check_texts(texts, len(ids)), ids, classes
