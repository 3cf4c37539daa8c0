"""Duplicate detection on scored pairs: the similarity threshold with the best F1."""

import dataclasses

import numpy as np

from keras_siamese.evaluation.correlation import _check_scores


@dataclasses.dataclass(frozen=True)
class BestF1Threshold:
    """The result of `best_f1_threshold`: predict a duplicate when similarity >= `threshold`."""

    threshold: float
    f1: float
    precision: float
    recall: float


def best_f1_threshold(similarities, labels):
    """The threshold on pair similarities that best separates duplicates (label 1), by F1.

    A pair is predicted a duplicate when its similarity is `>= threshold`.
    Every cut between two distinct similarities is tried; the threshold is
    the midpoint between the lowest similarity kept and the next lower one
    (or the lowest similarity itself when every pair is kept), and of cuts
    with equal F1 the highest wins. The same search and numbers as
    sentence-transformers' `BinaryClassificationEvaluator.find_best_f1_and_threshold`
    (on float64 similarities).

    Args:
        similarities: one score per pair, at least 2, finite; higher means more similar.
        labels: one label per pair, 1 (duplicate) or 0; at least one 1.

    Returns:
        A `BestF1Threshold` of python floats: `threshold`, `f1`, `precision`, `recall`.

    Example:
    >>> best_f1_threshold([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0])
    BestF1Threshold(threshold=0.2, f1=0.8, precision=0.6666666666666666, recall=1.0)
    """
    similarities = _check_scores(similarities, "similarities")
    labels = _check_binary_labels(labels, len(similarities))
    order = np.argsort(-similarities, kind="stable")
    similarities, labels = similarities[order], labels[order]
    # Cut after each group of equal similarities: the pairs up to it are predicted duplicates.
    cuts = np.flatnonzero(np.append(similarities[1:] != similarities[:-1], True))
    true_positives = np.cumsum(labels)[cuts]
    precision = true_positives / (cuts + 1)
    recall = true_positives / labels.sum()
    with np.errstate(invalid="ignore"):  # 0 / 0 where no duplicate is kept yet: F1 0
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    best = int(np.argmax(f1))
    cut = cuts[best]
    threshold = similarities[cut]
    if cut + 1 < len(similarities):
        midpoint = (similarities[cut] + similarities[cut + 1]) / 2
        if midpoint != similarities[cut + 1]:  # rounding must not let the next group in
            threshold = midpoint
    return BestF1Threshold(float(threshold), float(f1[best]), float(precision[best]), float(recall[best]))


def _check_binary_labels(labels, count):
    """`labels` as a float64 array of 0s and 1s, `count` of them with at least one 1; else a ValueError."""
    try:
        array = np.asarray(labels, dtype=np.float64) if not isinstance(labels, (str, bytes)) else None
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim != 1 or not np.all((array == 0) | (array == 1)):
        raise ValueError(f"labels must be a 1-D list of 0s and 1s (1: duplicate), got {labels!r:.80}.")
    if len(array) != count:
        raise ValueError(f"similarities and labels must have one entry per pair, got {count} and {len(array)}.")
    if not array.any():
        raise ValueError("labels hold no duplicate (1): F1 is undefined without a positive pair.")
    return array
