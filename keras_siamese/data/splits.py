"""Deterministic stratified train/test split of a labelled corpus."""

import numbers

import numpy as np

from keras_siamese.checks import check_integer
from keras_siamese.data.labels import check_corpus
from keras_siamese.data.sampling import group_by_class


def train_test_split_by_label(texts, labels, test_fraction=0.2, seed=0):
    """Splits each class separately so train and test keep the class proportions.

    A class of n texts sends `round(test_fraction * n)` of them, chosen at random, to
    test, but never all of them nor none of them when n >= 2 (at least one text stays on
    each side); a class with a single text stays in train. Both parts keep the corpus
    order. Same seed, same split.

    Args:
        texts: sequence of strings.
        labels: one label per text, integers or strings; returned as given (as a numpy array).
        test_fraction: in (0, 1).
        seed: non-negative integer.

    Returns:
        `(train_texts, train_labels, test_texts, test_labels)`: lists of texts, numpy arrays
        of labels.

    Example:
    >>> parts = train_test_split_by_label(list("abcdef"), [0, 0, 0, 1, 1, 1], 1 / 3)
    >>> [len(part) for part in parts]
    [4, 4, 2, 2]
    """
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, numbers.Real)
        or not 0.0 < test_fraction < 1.0
    ):
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}.")
    texts, ids, _ = check_corpus(texts, labels)
    rng = np.random.default_rng(check_integer(seed, "seed", minimum=0))
    is_test = np.zeros(len(ids), bool)
    for members in group_by_class(ids)[1]:
        if len(members) >= 2:
            count = min(max(int(round(test_fraction * len(members))), 1), len(members) - 1)
            is_test[rng.choice(members, count, replace=False)] = True
    labels = np.asarray(labels)
    train, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    return [texts[i] for i in train], labels[train], [texts[i] for i in test], labels[test]
