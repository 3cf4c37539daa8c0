"""Retrieval metrics from their definitions, in plain Python: the oracles for retrieval_metrics and
information_retrieval_metrics."""

import math

import numpy as np


def ranked_relevance(queries, corpus, is_relevant, exclude_self=False, normalize=True):
    """Per query `i`, the corpus ranked by descending similarity as a list of `is_relevant(i, j)`;
    equal scores put irrelevant items first."""

    def unit(vector):
        norm = math.sqrt(sum(x * x for x in vector))
        return [x / norm for x in vector] if normalize and norm > 0 else list(vector)

    queries = [unit(row) for row in np.asarray(queries, dtype=np.float64).tolist()]
    corpus = [unit(row) for row in np.asarray(corpus, dtype=np.float64).tolist()]
    rankings = []
    for i, query in enumerate(queries):
        items = [
            (sum(a * b for a, b in zip(query, item)), bool(is_relevant(i, j)))
            for j, item in enumerate(corpus)
            if not (exclude_self and j == i)
        ]
        rankings.append([relevant for _, relevant in sorted(items, key=lambda item: (-item[0], item[1]))])
    return rankings


def oracle_metrics(queries, query_labels, corpus, corpus_labels, ks, exclude_self=False, normalize=True):
    """hit@k, mrr and map@r of `retrieval_metrics`: relevant means the query's label."""
    totals = {f"hit@{k}": 0.0 for k in ks}
    totals["mrr"] = totals["map@r"] = 0.0

    def is_relevant(i, j):
        return corpus_labels[j] == query_labels[i]

    for ranked in ranked_relevance(queries, corpus, is_relevant, exclude_self, normalize):
        r = sum(ranked)
        if r == 0:
            continue
        first = ranked.index(True) + 1
        for k in ks:
            totals[f"hit@{k}"] += first <= k
        totals["mrr"] += 1.0 / first
        totals["map@r"] += precision_sum(ranked[:r]) / r
    return {name: value / len(queries) for name, value in totals.items()}


def oracle_information_retrieval(queries, corpus, relevant, ks, normalize=True):
    """The metrics of `information_retrieval_metrics`, each written from its definition."""
    names = ("accuracy", "precision", "recall", "mrr", "ndcg", "map")
    totals = {f"{name}@{k}": 0.0 for name in names for k in ks}
    rankings = ranked_relevance(queries, corpus, lambda i, j: j in relevant[i], normalize=normalize)
    for ranked, documents in zip(rankings, relevant):
        r = len(set(documents))
        for k in ks:
            top = ranked[:k]
            found = sum(top)
            totals[f"accuracy@{k}"] += found > 0
            totals[f"precision@{k}"] += found / k
            totals[f"recall@{k}"] += found / r
            totals[f"mrr@{k}"] += 1.0 / (top.index(True) + 1) if found else 0.0
            dcg = sum(1.0 / math.log2(rank + 1) for rank, is_hit in enumerate(top, start=1) if is_hit)
            ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(r, k) + 1))
            totals[f"ndcg@{k}"] += dcg / ideal
            totals[f"map@{k}"] += precision_sum(top) / min(k, r)
    return {name: value / len(queries) for name, value in totals.items()}


def precision_sum(ranked):
    """The sum, over the relevant items of a ranking, of the precision at their rank."""
    found, total = 0, 0.0
    for rank, relevant in enumerate(ranked, start=1):
        if relevant:
            found += 1
            total += found / rank
    return total
