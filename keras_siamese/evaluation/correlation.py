"""How well embedding similarities order scored text pairs: Spearman and Pearson correlation (STS)."""

import numpy as np

from keras_siamese.checks import check_integer


def spearman_correlation(x, y):
    """Spearman's rank correlation of two score lists: the Pearson correlation of their ranks.

    Tied values share the mean of their ranks (as `scipy.stats.spearmanr`). NaN
    when either list is constant, where the correlation is undefined.

    Example:
    >>> round(spearman_correlation([0.1, 0.4, 0.3], [1, 3, 2]), 6)
    1.0
    """
    x, y = _check_score_pair(x, y)
    return pearson_correlation(_average_ranks(x), _average_ranks(y))


def pearson_correlation(x, y):
    """Pearson's linear correlation of two score lists (NaN when either is constant).

    Example:
    >>> round(pearson_correlation([1, 2, 3], [2, 4, 7]), 4)
    0.9934
    """
    x, y = _check_score_pair(x, y)
    x, y = x - x.mean(), y - y.mean()
    norm_x, norm_y = np.linalg.norm(x), np.linalg.norm(y)
    if norm_x == 0 or norm_y == 0:
        return float("nan")
    return float(np.clip(np.dot(x / norm_x, y / norm_y), -1.0, 1.0))


def pair_similarity_correlation(model, texts_a, texts_b, scores, batch_size=64):
    """Embeds scored text pairs and correlates their cosine similarities with the scores.

    The STS protocol: `{"spearman": ..., "pearson": ...}` between `cos(embed(a_i),
    embed(b_i))` and `scores[i]`. Spearman is the figure STS benchmarks report;
    it is what `CoSENTLoss` trains.

    Args:
        model: what `keras_siamese.inference.encode` takes (e.g. a `SentenceEmbedder`).
        texts_a, texts_b: the pairs' texts, as many as `scores`, at least 2.
        scores: a graded similarity per pair (any scale).
        batch_size: texts per encoding call.

    Example:
    >>> pair_similarity_correlation(model, ["a cat", "a car"], ["a dog", "a poem"], [3.8, 0.2])  # doctest: +SKIP
    {'spearman': 1.0, 'pearson': 1.0}
    """
    from keras_siamese.inference import encode

    scores = _check_scores(scores, "scores")
    if isinstance(texts_a, (str, bytes)) or isinstance(texts_b, (str, bytes)):
        raise ValueError("texts_a and texts_b must be sequences of texts, not single strings.")
    texts_a, texts_b = list(texts_a), list(texts_b)
    if not len(texts_a) == len(texts_b) == len(scores):
        raise ValueError(
            f"texts_a, texts_b and scores must have one entry per pair, got {len(texts_a)}, "
            f"{len(texts_b)} and {len(scores)}."
        )
    batch_size = check_integer(batch_size, "batch_size")
    return embedding_correlation(
        encode(model, texts_a, batch_size=batch_size), encode(model, texts_b, batch_size=batch_size), scores
    )


def embedding_correlation(first, second, scores):
    """`{"spearman": ..., "pearson": ...}` of the pairs' cosines (`pair_cosines`) and their scores.

    Example:
    >>> metrics = embedding_correlation([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8]], [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]],
    ...                                 [5.0, 1.0, 3.4])
    >>> round(metrics["spearman"], 6), round(metrics["pearson"], 6)
    (1.0, 1.0)
    """
    cosines = pair_cosines(first, second)
    return {"spearman": spearman_correlation(cosines, scores), "pearson": pearson_correlation(cosines, scores)}


def pair_cosines(first, second):
    """Row i's cosine similarity of `first[i]` and `second[i]` (`[n, d]` arrays), float64; 0 for a zero row.

    Example:
    >>> pair_cosines([[3.0, 4.0]], [[3.0, 4.0]]).tolist()
    [1.0]
    """
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    return np.einsum("ij,ij->i", first, second) / np.maximum(norms, 1e-12)


def _check_score_pair(x, y):
    x, y = _check_scores(x, "x"), _check_scores(y, "y")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}.")
    return x, y


def _check_scores(values, name):
    try:
        array = np.asarray(values, dtype=np.float64) if not isinstance(values, (str, bytes)) else np.array([])
    except (TypeError, ValueError):
        array = np.array([])
    if array.ndim != 1 or len(array) < 2:
        raise ValueError(f"{name} must be a 1-D list of at least 2 numbers, got {values!r:.80}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite numbers; it holds NaN or infinity.")
    return array


def _average_ranks(values):
    """1-based ranks, tied values sharing the mean of their positions."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    inverse = np.unique(values, return_inverse=True)[1].reshape(-1)
    return (np.bincount(inverse, weights=ranks) / np.bincount(inverse))[inverse]
