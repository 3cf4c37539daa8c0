"""Information-retrieval quality of query embeddings against a corpus with known relevant documents:
the measures of BEIR, MTEB and sentence-transformers' `InformationRetrievalEvaluator`."""

from collections.abc import Iterable, Mapping

import numpy as np
import tensorflow as tf

from keras_siamese.checks import check_ks, is_integer
from keras_siamese.search.exact import (
    check_embeddings,
    check_same_dimension,
    l2_normalize,
    similarity_chunks,
)

METRICS = ("accuracy", "precision", "recall", "mrr", "ndcg", "map")


def information_retrieval_metrics(
    query_embeddings,
    corpus_embeddings,
    relevant,
    ks=(1, 3, 5, 10),
    normalize=True,
    batch_size=None,
):
    """Ranks the corpus for each query by similarity and scores the ranking against its relevant documents.

    Each query ranks the whole corpus by descending similarity (cosine
    similarity, or the plain inner product with `normalize=False`). With `R`
    the number of documents relevant to the query (binary relevance), for
    each `k` in `ks`:

    - `accuracy@k`: 1 if a relevant document is in the top `k`, else 0.
    - `precision@k`: relevant documents in the top `k`, divided by `k`.
    - `recall@k`: relevant documents in the top `k`, divided by `R`.
    - `mrr@k`: `1 / rank` of the first relevant document if it is in the top `k`, else 0.
    - `ndcg@k`: the sum of `1 / log2(rank + 1)` over the relevant documents in
      the top `k`, divided by its best possible value, the same sum over
      ranks `1 .. min(R, k)`.
    - `map@k`: the precision at the rank of each relevant document in the
      top `k`, summed and divided by `min(k, R)` (sentence-transformers' definition).

    Each is averaged over the queries.

    Ties: a relevant document with the same score as irrelevant ones ranks
    after them (the pessimistic rule of `retrieval_metrics`, so a collapsed
    model that gives every text the same embedding scores its worst).
    sentence-transformers orders equal scores by corpus id instead, so the
    numbers agree wherever no relevant document ties an irrelevant one.

    Every query needs at least one relevant document. BEIR and
    sentence-transformers drop queries that have none, so drop them before
    calling this.

    Queries are scored `batch_size` at a time, so memory stays at
    `batch_size x corpus size` scores (by default 2**24 scores, 64 MiB).

    Args:
        query_embeddings: `[q, d]` float array (any float dtype; maths in float32).
        corpus_embeddings: `[n, d]` float array.
        relevant: one collection per query (set, list, array) of the corpus
            positions (integers in `[0, n)`) relevant to it.
        ks: cut-offs, positive integers. A `k` beyond the corpus size ranks
            the whole corpus (`precision@k` still divides by `k`).
        normalize: L2-normalise both sides first (cosine similarity); an
            all-zero embedding stays zero and scores 0 against everything.
        batch_size: queries scored at once; default: as many as fit 2**24 scores.

    Returns:
        A dict of python floats: `accuracy@k`, `precision@k`, `recall@k`,
        `mrr@k`, `ndcg@k` and `map@k` for each `k`.

    Example:
    >>> corpus = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    >>> metrics = information_retrieval_metrics([[0.9, 0.1]], corpus, [{1, 2}], ks=(1, 2))
    >>> metrics["accuracy@1"], metrics["recall@2"], metrics["map@2"], round(metrics["ndcg@2"], 4)
    (0.0, 0.5, 0.25, 0.3869)
    """
    queries = check_embeddings(query_embeddings, "query_embeddings")
    corpus = check_embeddings(corpus_embeddings, "corpus_embeddings")
    check_same_dimension(queries, corpus)
    ks = check_ks(ks)
    pair_queries, pair_documents = check_relevant(relevant, len(queries), len(corpus))
    if normalize:
        queries, corpus = l2_normalize(queries), l2_normalize(corpus)
    depth = min(max(ks), len(corpus))
    ranks, positions = _relevant_ranks(queries, corpus, pair_queries, pair_documents, depth, batch_size)
    return _averages(pair_queries, ranks, positions, len(queries), ks)


def check_relevant(relevant, num_queries, corpus_size):
    """`(queries, documents)`: int64 arrays of the relevant (query, corpus position) pairs, sorted by
    query, each pair once; raises `ValueError` saying which entry of `relevant` is wrong.

    Example:
    >>> [pairs.tolist() for pairs in check_relevant([[2, 0, 2], {1}], num_queries=2, corpus_size=3)]
    [[0, 0, 1], [0, 2, 1]]
    """
    if not _is_collection(relevant):
        raise ValueError(
            "relevant must be a sequence holding one collection of corpus positions per query, "
            f"got {type(relevant).__name__}."
        )
    relevant = list(relevant)
    if len(relevant) != num_queries:
        raise ValueError(
            f"relevant has {len(relevant)} entries for {num_queries} queries; give one collection "
            "of corpus positions per query."
        )
    pair_queries, pair_documents = [], []
    for query, documents in enumerate(relevant):
        if not _is_collection(documents):
            raise ValueError(f"relevant[{query}] must be a collection of corpus positions, got {documents!r:.80}.")
        documents = list(documents)
        for document in documents:
            if not is_integer(document) or not 0 <= document < corpus_size:
                raise ValueError(
                    f"relevant[{query}] holds {document!r}, not a corpus position "
                    f"(an integer in [0, {corpus_size}))."
                )
        if not documents:
            raise ValueError(
                f"relevant[{query}] is empty: query {query} has no relevant document. Drop such "
                "queries first (as BEIR does)."
            )
        unique = sorted(set(int(document) for document in documents))
        pair_queries += [query] * len(unique)
        pair_documents += unique
    return np.array(pair_queries, dtype=np.int64), np.array(pair_documents, dtype=np.int64)


def _is_collection(value):
    return isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping))


def _relevant_ranks(queries, corpus, pair_queries, pair_documents, depth, batch_size):
    """(rank, position among its query's relevant documents) of each relevant pair, 1-based, float64;
    rank inf beyond the top `depth`.

    With ties ordered irrelevant first, the relevant document in position `p`
    of its query's relevant documents sorted by score sits at rank
    `(documents scoring >= it) - (relevant ones tied with it after it)`.
    Within the top `depth` every document scoring above the `depth`-th score
    is among `top_k`'s values, so only a tie with that score needs a count
    over the whole row.
    """
    ranks = np.empty(len(pair_queries))
    positions = np.empty(len(pair_queries))
    for start, scores in similarity_chunks(queries, corpus, batch_size):
        low, high = np.searchsorted(pair_queries, [start, start + int(scores.shape[0])])
        rows, documents = pair_queries[low:high] - start, pair_documents[low:high]
        pair_scores = tf.gather_nd(scores, np.stack([rows, documents], axis=1)).numpy()
        top = tf.math.top_k(scores, k=depth).values.numpy()
        cutoff = top[:, -1]
        at_cutoff = tf.reduce_sum(tf.cast(scores >= cutoff[:, None], tf.int64), axis=1).numpy()
        at_least = np.where(
            pair_scores == cutoff[rows], at_cutoff[rows], np.sum(top[rows] >= pair_scores[:, None], axis=1)
        )
        order = np.lexsort((-pair_scores, rows))  # by query, best first
        rows, sorted_scores = rows[order], pair_scores[order]
        index = np.arange(len(order))
        run_ends = np.flatnonzero(np.append((rows[1:] != rows[:-1]) | (sorted_scores[1:] != sorted_scores[:-1]), True))
        tied_after = run_ends[np.searchsorted(run_ends, index)] - index
        in_top = sorted_scores >= cutoff[rows]
        ranks[low + order] = np.where(in_top, at_least[order] - tied_after, np.inf)
        positions[low + order] = index - np.searchsorted(rows, rows) + 1
    return ranks, positions


def _averages(pair_queries, ranks, positions, num_queries, ks):
    """The metrics of `information_retrieval_metrics` from the ranks of the relevant pairs."""
    num_relevant = np.bincount(pair_queries, minlength=num_queries)
    first_rank = np.full(num_queries, np.inf)
    np.minimum.at(first_rank, pair_queries, ranks)
    ideal_gains = np.cumsum(1.0 / np.log2(np.arange(2, max(ks) + 2)))  # ideal DCG at each depth
    values = {}
    for k in ks:
        found = ranks <= k
        hits = np.bincount(pair_queries, weights=found, minlength=num_queries)
        gains = np.bincount(pair_queries, weights=np.where(found, 1.0 / np.log2(ranks + 1), 0.0), minlength=num_queries)
        precisions = np.bincount(pair_queries, weights=np.where(found, positions / ranks, 0.0), minlength=num_queries)
        cut = np.minimum(num_relevant, k)
        values[k] = {
            "accuracy": hits > 0,
            "precision": hits / k,
            "recall": hits / num_relevant,
            "mrr": np.where(first_rank <= k, 1.0 / first_rank, 0.0),
            "ndcg": gains / ideal_gains[cut - 1],
            "map": precisions / cut,
        }
    return {f"{name}@{k}": float(np.mean(values[k][name])) for name in METRICS for k in ks}
