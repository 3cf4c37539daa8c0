"""Retrieval quality of labelled query embeddings against a labelled corpus."""

import numpy as np
import tensorflow as tf

from keras_siamese.checks import check_ks
from keras_siamese.data import encode_labels
from keras_siamese.search.exact import (
    check_embeddings,
    check_same_dimension,
    l2_normalize,
    similarity_chunks,
)


def retrieval_metrics(
    query_embeddings,
    query_labels,
    corpus_embeddings,
    corpus_labels,
    ks=(1, 5),
    exclude_self=False,
    normalize=True,
    batch_size=None,
):
    """Ranks the corpus for each query by similarity and scores the ranking by label.

    A corpus item is *relevant* to a query when it has the query's label. Each
    query ranks the whole corpus by descending similarity (cosine similarity,
    or the plain inner product with `normalize=False`), and:

    - `hit@k`: the fraction of queries with at least one relevant item among
      the top `k` (what metric-learning papers call "Recall@k"; IR's recall@k,
      the share of a query's relevant items found, is in
      `information_retrieval_metrics`). A `k` beyond the corpus size means
      "any relevant item at all".
    - `mrr`: the mean over queries of `1 / rank` of the first relevant item,
      over the full ranking (no cut-off).
    - `map@r` (Musgrave et al., 2020, "A Metric Learning Reality Check"): with
      `R` the number of relevant items for the query, the mean over the
      relevant items within the top `R` of the precision at their rank,
      divided by `R` (so missing ones count 0); averaged over queries.

    Ties: a relevant item with the same score as irrelevant items is ranked
    after them (the pessimistic rule, so a collapsed model that gives every
    text the same embedding scores 0, not chance). Order among relevant items
    with equal scores does not change any metric.

    A query with no relevant item in the corpus (its label is absent, or with
    `exclude_self` it is its class's only member) counts as a miss: 0 in every
    metric, and it stays in the average.

    Queries are scored `batch_size` at a time, so memory stays at
    `batch_size x corpus size` scores (by default 2**24 scores, 64 MiB), and
    100k x 100k runs without the full matrix.

    Args:
        query_embeddings: `[q, d]` float array (any float dtype; maths in float32).
        query_labels: `q` labels, integers or strings.
        corpus_embeddings: `[n, d]` float array.
        corpus_labels: `n` labels of the same kind as `query_labels`.
        ks: cut-offs for `hit@k`, positive integers.
        exclude_self: leave-one-out when the queries *are* the corpus (same
            length, query `i` is corpus item `i`): each query skips itself.
        normalize: L2-normalise both sides first (cosine similarity); an
            all-zero embedding stays zero and scores 0 against everything.
        batch_size: queries scored at once; default: as many as fit 2**24 scores.

    Returns:
        A dict of python floats: `hit@k` for each `k`, `mrr`, `map@r`.

    Example:
    >>> corpus = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    >>> metrics = retrieval_metrics([[0.9, 0.1]], ["a"], corpus, ["b", "a", "a"], ks=(1,))
    >>> metrics["hit@1"], metrics["mrr"], metrics["map@r"]
    (0.0, 0.5, 0.25)
    """
    queries, query_ids, corpus, corpus_ids = _checked_sides(
        query_embeddings, query_labels, corpus_embeddings, corpus_labels, exclude_self
    )
    ks = check_ks(ks)
    if normalize:
        queries, corpus = l2_normalize(queries), l2_normalize(corpus)
    hits, reciprocal_rank_sum, average_precision_sum = _ranking_sums(
        queries, query_ids, corpus, corpus_ids, ks, exclude_self, batch_size
    )
    count = len(queries)
    metrics = {}
    for k in ks:
        metrics[f"hit@{k}"] = hits[k] / count
    metrics["mrr"] = reciprocal_rank_sum / count
    metrics["map@r"] = average_precision_sum / count
    return metrics


def _checked_sides(query_embeddings, query_labels, corpus_embeddings, corpus_labels, exclude_self):
    """(queries, query ids, corpus, corpus ids): float32 embeddings and label ids equal exactly
    where the labels are; a `ValueError` saying what does not fit."""
    queries = check_embeddings(query_embeddings, "query_embeddings")
    corpus = check_embeddings(corpus_embeddings, "corpus_embeddings")
    check_same_dimension(queries, corpus)
    query_ids, corpus_ids = _encode_jointly(query_labels, len(queries), corpus_labels, len(corpus))
    if exclude_self and len(queries) != len(corpus):
        raise ValueError(
            f"exclude_self needs the queries to be the corpus, but there are {len(queries)} "
            f"queries and {len(corpus)} corpus items."
        )
    return queries, query_ids, corpus, corpus_ids


def _ranking_sums(queries, query_ids, corpus, corpus_ids, ks, exclude_self, batch_size):
    """({k: queries with a relevant item in their top k}, sum of reciprocal ranks, sum of AP@R),
    scoring `batch_size` queries at a time."""
    corpus_ids = tf.constant(corpus_ids)
    hits = {k: 0.0 for k in ks}
    reciprocal_rank_sum = average_precision_sum = 0.0
    for start, scores in similarity_chunks(queries, corpus, batch_size):
        rows = int(scores.shape[0])
        relevant = tf.equal(tf.constant(query_ids[start : start + rows])[:, None], corpus_ids[None, :])
        if exclude_self:
            own = tf.one_hot(tf.range(start, start + rows), len(corpus), on_value=True, off_value=False)
            relevant = relevant & ~own
            scores = tf.where(own, -np.inf, scores)
        first_rank, num_relevant = _first_relevant_rank(scores, relevant)
        found = num_relevant > 0
        for k in ks:
            hits[k] += float(tf.reduce_sum(tf.cast(found & (first_rank <= k), tf.float64)))
        reciprocal_rank_sum += float(
            tf.reduce_sum(tf.where(found, 1.0 / tf.cast(first_rank, tf.float64), 0.0))
        )
        average_precision_sum += float(np.sum(_average_precision_at_r(scores, relevant, num_relevant)))
    return hits, reciprocal_rank_sum, average_precision_sum


def _first_relevant_rank(scores, relevant):
    """1-based rank of each row's best relevant item (pessimistic ties) and the relevant count."""
    num_relevant = tf.reduce_sum(tf.cast(relevant, tf.int32), axis=1)
    best_relevant = tf.reduce_max(tf.where(relevant, scores, -np.inf), axis=1)
    outranking = ~relevant & (scores >= best_relevant[:, None])
    return 1 + tf.reduce_sum(tf.cast(outranking, tf.int32), axis=1), num_relevant


def _average_precision_at_r(scores, relevant, num_relevant):
    """Per-row AP@R; 0 for rows without relevant items.

    The i-th best relevant item (1-based) sits at rank `i + (irrelevant items
    scoring >= it)`: ties put irrelevant items first. Its precision there is
    `i / rank`, and it counts when `rank <= R`.
    """
    depth = int(tf.reduce_max(num_relevant))
    if depth == 0:
        return np.zeros(int(num_relevant.shape[0]))
    scores, relevant = scores.numpy(), relevant.numpy()
    # numpy's sort is much faster than top_k with a large k here.
    best_relevant = -np.sort(np.where(relevant, -scores, np.inf), axis=1)[:, :depth]
    irrelevant_ascending = np.sort(np.where(relevant, -np.inf, scores), axis=1)
    below = tf.searchsorted(irrelevant_ascending, np.ascontiguousarray(best_relevant), side="left").numpy()
    order = np.arange(1, depth + 1)
    rank = order + (scores.shape[1] - below)
    num_relevant = num_relevant.numpy()[:, None]
    counted = (order <= num_relevant) & (rank <= num_relevant)
    return np.where(counted, order / rank, 0.0).sum(axis=1) / np.maximum(num_relevant[:, 0], 1)


def _encode_jointly(query_labels, num_queries, corpus_labels, num_corpus):
    """Int ids for both label lists, equal exactly where the labels are equal."""
    query_labels = np.asarray(query_labels, dtype=object)
    corpus_labels = np.asarray(corpus_labels, dtype=object)
    for name, labels, count in (
        ("query_labels", query_labels, num_queries),
        ("corpus_labels", corpus_labels, num_corpus),
    ):
        if labels.ndim != 1 or len(labels) != count:
            raise ValueError(f"{name} must hold one label per embedding ({count}), got shape {labels.shape}.")
    ids, _ = encode_labels(np.concatenate([query_labels, corpus_labels]))
    return ids[:num_queries], ids[num_queries:]
