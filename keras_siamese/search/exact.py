"""Exact nearest neighbours by inner product, computed in bounded memory.

The building blocks shared by the search index and the evaluation metrics:
checking an embedding matrix, L2 normalisation and a chunked
`queries @ corpus.T` that never holds more than `chunk_rows x corpus_size`
scores at a time.
"""

import numpy as np
import tensorflow as tf

from keras_siamese.checks import is_integer, is_number

# Scores held at once: chunk_rows * corpus_size <= this many float32 (64 MiB).
_SCORES_PER_CHUNK = 2**24


def check_embeddings(embeddings, name="embeddings"):
    """Returns `embeddings` as a float32 `[n, d]` numpy array; raises `ValueError` if it is not one.

    Accepts numpy arrays, tensors and nested lists of any float or integer dtype
    (float16/bfloat16 are widened to float32). Rejects other ranks, empty
    arrays and NaN/inf values.

    Example:
    >>> check_embeddings([[1, 0], [0, 1]]).dtype
    dtype('float32')
    """
    try:
        array = np.asarray(embeddings)
        if array.dtype.kind not in "fiu" and array.dtype.name != "bfloat16":
            raise TypeError
        array = array.astype(np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array, got {type(embeddings).__name__}.") from None
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D [count, dimension], got shape {array.shape}.")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}).")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contain NaN or infinite values.")
    return array


def check_same_dimension(queries, corpus):
    """Raises `ValueError` unless both `[n, d]` arrays have the same `d`."""
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(
            f"query embeddings have dimension {queries.shape[1]} but the corpus has "
            f"dimension {corpus.shape[1]}."
        )


def l2_normalize(embeddings, epsilon=1e-12):
    """Scales each row to unit L2 norm in float32; an all-zero row stays zero.

    Raises `ValueError` unless `embeddings` is a 2-D numeric array of finite values.

    Example:
    >>> l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    if not is_number(epsilon) or not 0 < epsilon < np.inf:
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}.")
    try:
        x = np.asarray(embeddings, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"embeddings must be a numeric array, got {type(embeddings).__name__}.") from None
    if x.ndim != 2:
        raise ValueError(f"embeddings must be 2-D [count, dimension], got shape {x.shape}.")
    squared_norm = np.sum(np.square(x), axis=1, keepdims=True)
    if not np.all(np.isfinite(squared_norm)):
        raise ValueError(
            "embeddings contain NaN or infinite values, or values too large to square in float32."
        )
    return x / np.sqrt(np.maximum(squared_norm, epsilon))


def chunk_rows(corpus_size, batch_size=None):
    """Query rows per chunk: `batch_size`, or as many as fit 2**24 scores against the corpus."""
    if batch_size is None:
        return max(1, _SCORES_PER_CHUNK // corpus_size)
    if not is_integer(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}.")
    return int(batch_size)


def similarity_chunks(queries, corpus, batch_size=None):
    """Yields `(start, scores)`: `scores = queries[start:start + rows] @ corpus.T` as a float32 tensor.

    The inputs are float32 numpy arrays (see `check_embeddings`); scores are
    inner products, so cosine similarities when both sides are normalised.
    Raises `ValueError` if a score overflows float32.

    Example:
    >>> [s.shape.as_list() for _, s in similarity_chunks(np.ones((5, 2)), np.ones((3, 2)), 2)]
    [[2, 3], [2, 3], [1, 3]]
    """
    corpus = tf.constant(corpus, dtype=tf.float32)
    rows = chunk_rows(int(corpus.shape[0]), batch_size)
    for start in range(0, len(queries), rows):
        scores = tf.linalg.matmul(
            tf.constant(queries[start : start + rows], dtype=tf.float32), corpus, transpose_b=True
        )
        if not bool(tf.reduce_all(tf.math.is_finite(scores))):
            raise ValueError("similarity scores overflow float32; normalise the embeddings.")
        yield start, scores


def exact_top_k(queries, corpus, k, batch_size=None):
    """The `k` corpus rows with the largest inner product with each query.

    Args:
        queries: float32 `[q, d]` numpy array.
        corpus: float32 `[n, d]` numpy array.
        k: neighbours per query, `1 <= k <= n`.
        batch_size: queries scored at once (default: as many as fit 2**24 scores).

    Returns:
        `(scores, indices)`: float32 and int64 `[q, k]` numpy arrays, best first;
        equal scores are ordered by corpus position, lower index first.

    Example:
    >>> scores, indices = exact_top_k(np.eye(2, dtype="float32"), np.eye(2, dtype="float32"), k=1)
    >>> indices.tolist()
    [[0], [1]]
    """
    queries, corpus = np.asarray(queries), np.asarray(corpus)
    if queries.ndim != 2 or corpus.ndim != 2:
        raise ValueError(
            "queries and corpus must be 2-D [count, dimension], "
            f"got shapes {queries.shape} and {corpus.shape}."
        )
    check_same_dimension(queries, corpus)
    if not is_integer(k) or not 1 <= k <= len(corpus):
        raise ValueError(f"k must be in [1, {len(corpus)}] (the corpus size), got {k!r}.")
    all_scores, all_indices = [], []
    for _, scores in similarity_chunks(queries, corpus, batch_size):
        top = tf.math.top_k(scores, k=k, sorted=True)
        all_scores.append(top.values.numpy())
        all_indices.append(top.indices.numpy().astype(np.int64))
    return np.concatenate(all_scores), np.concatenate(all_indices)
