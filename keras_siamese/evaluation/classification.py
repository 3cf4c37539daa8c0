"""Classification from embeddings (k nearest neighbours) and its report: accuracy, F1, ROC AUC."""

import numpy as np

from keras_siamese.checks import is_integer
from keras_siamese.data import encode_labels
from keras_siamese.search.exact import (
    check_embeddings,
    check_same_dimension,
    exact_top_k,
    l2_normalize,
)

WEIGHTINGS = ("uniform", "similarity")


def knn_scores(
    query_embeddings,
    corpus_embeddings,
    corpus_labels,
    num_classes=None,
    k=5,
    weighting="uniform",
    normalize=True,
    batch_size=None,
):
    """Each class's share of the votes of a query's `k` most similar corpus items.

    Votes: with `weighting="uniform"` each neighbour gives one vote; with
    `"similarity"` it gives its similarity to the query, negative similarities
    counting 0 (a query whose neighbours all have similarity <= 0 falls back
    to uniform votes). Shares sum to 1 per query, so they serve as class
    probabilities for `classification_report`'s ROC AUC. Neighbours with equal
    similarity are taken in corpus order.

    Args:
        query_embeddings: `[q, d]` float array.
        corpus_embeddings: `[n, d]` float array.
        corpus_labels: `n` integer class ids in `[0, num_classes)`.
        num_classes: number of columns; default `max(corpus_labels) + 1`.
        k: neighbours per query, `1 <= k <= n`.
        weighting: `"uniform"` or `"similarity"`.
        normalize: L2-normalise both sides first (cosine similarity).
        batch_size: queries scored at once; default: as many as fit 2**24 scores.

    Returns:
        float32 `[q, num_classes]` numpy array.

    Example:
    >>> corpus = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> knn_scores([[1.0, -0.1], [0.1, 1.0]], corpus, [0, 1, 1], k=2).tolist()
    [[0.5, 0.5], [0.0, 1.0]]
    """
    _check_num_classes(num_classes)
    ids = _check_class_ids(corpus_labels, "corpus_labels", num_classes)
    num_classes = int(ids.max()) + 1 if num_classes is None else num_classes
    scores, _ = _vote(query_embeddings, corpus_embeddings, ids, num_classes, k, weighting, normalize, batch_size)
    return scores


def knn_classify(
    query_embeddings,
    corpus_embeddings,
    corpus_labels,
    k=5,
    weighting="uniform",
    normalize=True,
    batch_size=None,
):
    """Predicts each query's label by a vote of its `k` most similar corpus items.

    Votes as in `knn_scores`. A tie between classes goes to the class of the
    most similar neighbour among the tied classes.

    Args:
        query_embeddings: `[q, d]` float array.
        corpus_embeddings: `[n, d]` float array.
        corpus_labels: `n` labels, integers or strings.
        k: neighbours per query, `1 <= k <= n`.
        weighting: `"uniform"` or `"similarity"`.
        normalize: L2-normalise both sides first (cosine similarity).
        batch_size: queries scored at once; default: as many as fit 2**24 scores.

    Returns:
        A numpy array of `q` labels taken from `corpus_labels`.

    Example:
    >>> corpus = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> knn_classify([[1.0, -0.1], [0.1, 1.0]], corpus, ["cat", "dog", "dog"], k=2).tolist()
    ['cat', 'dog']
    """
    ids, classes = encode_labels(corpus_labels)
    _, dense_ids = np.unique(ids, return_inverse=True)  # classes[i] is the label of dense id i
    scores, first_vote = _vote(
        query_embeddings, corpus_embeddings, dense_ids, len(classes), k, weighting, normalize, batch_size
    )
    tied_best = scores == scores.max(axis=1, keepdims=True)
    winner = np.argmin(np.where(tied_best, first_vote, k), axis=1)
    return np.asarray(classes)[winner]


def classification_report(y_true, y_pred, num_classes=None):
    """Accuracy, macro and weighted F1, and (given scores) one-vs-rest ROC AUC.

    Definitions:
    - F1 of a class = `2 tp / (2 tp + fp + fn)` (0 when the class is neither
      true nor predicted anywhere); `macro_f1` averages it over the classes
      that occur in `y_true` or in the predictions; `weighted_f1` weights it
      by each class's count in `y_true`.
    - ROC AUC is the Mann-Whitney statistic: the probability that a random
      positive scores above a random negative, ties counting one half.
      `macro_auc` averages the per-class one-vs-rest AUC over classes that have
      both positives and negatives in `y_true` (omitted if none has);
      `micro_auc` is one AUC over all `(example, class)` cells, positive where
      the class is the true one (omitted with a single class).

    Args:
        y_true: `n` integer class ids in `[0, num_classes)`.
        y_pred: `n` predicted class ids, or a float `[n, num_classes]` array of
            scores/probabilities (the prediction is the top column, the lowest
            index on ties); AUC is reported only for scores.
        num_classes: number of classes; default: the score columns, or
            `max(labels) + 1`.

    Returns:
        A dict of python floats: `accuracy`, `macro_f1`, `weighted_f1`, and
        with scores `micro_auc`, `macro_auc`.

    Example:
    >>> classification_report([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    {'accuracy': 0.6666666666666666, 'macro_f1': 0.6666666666666666, \
'weighted_f1': 0.6666666666666666, 'micro_auc': 0.8888888888888888, 'macro_auc': 1.0}
    """
    _check_num_classes(num_classes)
    y_pred_array = np.asarray(y_pred)
    scores = None
    if y_pred_array.ndim == 2:
        scores = check_embeddings(y_pred_array, "y_pred scores").astype(np.float64)
        if num_classes is not None and scores.shape[1] != num_classes:
            raise ValueError(f"y_pred has {scores.shape[1]} score columns but num_classes is {num_classes}.")
        num_classes = scores.shape[1]
        y_pred_array = np.argmax(scores, axis=1)
    y_true = _check_class_ids(y_true, "y_true", num_classes)
    y_pred_ids = _check_class_ids(y_pred_array, "y_pred", num_classes)
    if len(y_true) != len(y_pred_ids):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred_ids)} predictions.")

    f1, support = [], []
    for c in np.union1d(y_true, y_pred_ids):
        true_positive = np.sum((y_true == c) & (y_pred_ids == c))
        false_positive = np.sum((y_true != c) & (y_pred_ids == c))
        false_negative = np.sum((y_true == c) & (y_pred_ids != c))
        f1.append(2 * true_positive / (2 * true_positive + false_positive + false_negative))
        support.append(np.sum(y_true == c))
    report = {
        "accuracy": float(np.mean(y_true == y_pred_ids)),
        "macro_f1": float(np.mean(f1)),
        "weighted_f1": float(np.average(f1, weights=support)),
    }
    if scores is not None:
        one_hot = np.arange(num_classes)[None, :] == y_true[:, None]
        if num_classes > 1:
            report["micro_auc"] = roc_auc(one_hot.ravel(), scores.ravel())
        per_class = [
            roc_auc(one_hot[:, c], scores[:, c]) for c in range(num_classes) if 0 < one_hot[:, c].sum() < len(y_true)
        ]
        if per_class:
            report["macro_auc"] = float(np.mean(per_class))
    return report


def roc_auc(is_positive, scores):
    """Area under the ROC curve of binary `is_positive` ranked by `scores` (Mann-Whitney, midranks for ties).

    Example:
    >>> roc_auc([True, False, True], [0.9, 0.5, 0.5])
    0.75
    """
    is_positive = np.asarray(is_positive)
    try:
        scores = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"scores must be numbers, got {type(scores).__name__}.") from None
    if is_positive.ndim != 1 or scores.shape != is_positive.shape:
        raise ValueError(
            f"is_positive and scores must be 1-D of the same length, got shapes {is_positive.shape} "
            f"and {scores.shape}."
        )
    if is_positive.dtype != bool:
        if is_positive.dtype.kind not in "iuf" or not np.all((is_positive == 0) | (is_positive == 1)):
            raise ValueError("is_positive must hold booleans or 0/1 values.")
        is_positive = is_positive.astype(bool)
    if np.any(np.isnan(scores)):
        raise ValueError("scores contain NaN values.")
    num_positive = int(is_positive.sum())
    num_negative = len(is_positive) - num_positive
    if num_positive == 0 or num_negative == 0:
        raise ValueError("ROC AUC needs at least one positive and one negative example.")
    _, group, counts = np.unique(scores, return_inverse=True, return_counts=True)
    midranks = np.cumsum(counts) - (counts - 1) / 2.0
    rank_sum = midranks[group][is_positive].sum()
    return float((rank_sum - num_positive * (num_positive + 1) / 2.0) / (num_positive * num_negative))


def _vote(query_embeddings, corpus_embeddings, class_ids, num_classes, k, weighting, normalize, batch_size):
    """Vote shares `[q, num_classes]` and each class's first neighbour position (`k` if absent)."""
    queries = check_embeddings(query_embeddings, "query_embeddings")
    corpus = check_embeddings(corpus_embeddings, "corpus_embeddings")
    check_same_dimension(queries, corpus)
    if len(class_ids) != len(corpus):
        raise ValueError(f"corpus_labels has {len(class_ids)} labels for {len(corpus)} corpus embeddings.")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
    if not is_integer(k) or not 1 <= k <= len(corpus):
        raise ValueError(f"k must be an integer in [1, {len(corpus)}] (the corpus size), got {k!r}.")
    if normalize:
        queries, corpus = l2_normalize(queries), l2_normalize(corpus)
    similarity, neighbours = exact_top_k(queries, corpus, k, batch_size)
    neighbour_classes = np.asarray(class_ids)[neighbours]
    weights = np.ones_like(similarity)
    if weighting == "similarity":
        positive = np.maximum(similarity, 0.0)
        weights = np.where(positive.sum(axis=1, keepdims=True) > 0, positive, 1.0)
    rows = np.arange(len(queries))[:, None]
    scores = np.zeros((len(queries), num_classes), dtype=np.float64)
    np.add.at(scores, (rows, neighbour_classes), weights)
    scores /= scores.sum(axis=1, keepdims=True)
    first_vote = np.full((len(queries), num_classes), k, dtype=np.int64)
    for position in reversed(range(k)):
        first_vote[rows[:, 0], neighbour_classes[:, position]] = position
    return scores.astype(np.float32), first_vote


def _check_num_classes(num_classes):
    if num_classes is not None and not (is_integer(num_classes) and num_classes >= 1):
        raise ValueError(f"num_classes must be a positive integer or None, got {num_classes!r}.")


def _check_class_ids(values, name, num_classes):
    """`values` as a 1-D int64 array of ids in `[0, num_classes)`, or a `ValueError`."""
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of class ids, got shape {array.shape}.")
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integer class ids, got dtype {array.dtype}.")
    if array.min() < 0:
        raise ValueError(f"{name} has a negative class id {array.min()}.")
    if num_classes is not None and array.max() >= num_classes:
        raise ValueError(f"{name} has class id {array.max()} but num_classes is {num_classes}.")
    return array.astype(np.int64)
