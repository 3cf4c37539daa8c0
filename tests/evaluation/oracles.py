"""Retrieval metrics from their definitions, in plain Python: the oracle for retrieval_metrics."""

import math

import numpy as np


def oracle_metrics(queries, query_labels, corpus, corpus_labels, ks, exclude_self=False, normalize=True):
    """Ranks every corpus item per query; equal scores put irrelevant items first."""

    def unit(vector):
        norm = math.sqrt(sum(x * x for x in vector))
        return [x / norm for x in vector] if normalize and norm > 0 else list(vector)

    queries = [unit(row) for row in np.asarray(queries, dtype=np.float64).tolist()]
    corpus = [unit(row) for row in np.asarray(corpus, dtype=np.float64).tolist()]
    totals = {f"hit@{k}": 0.0 for k in ks}
    totals["mrr"] = totals["map@r"] = 0.0
    for i, (query, label) in enumerate(zip(queries, query_labels)):
        items = [
            (sum(a * b for a, b in zip(query, item)), item_label == label)
            for j, (item, item_label) in enumerate(zip(corpus, corpus_labels))
            if not (exclude_self and j == i)
        ]
        ranked = [relevant for _, relevant in sorted(items, key=lambda item: (-item[0], item[1]))]
        r = sum(ranked)
        if r == 0:
            continue
        first = ranked.index(True) + 1
        for k in ks:
            totals[f"hit@{k}"] += first <= k
        totals["mrr"] += 1.0 / first
        found, precision_sum = 0, 0.0
        for position, relevant in enumerate(ranked[:r], start=1):
            if relevant:
                found += 1
                precision_sum += found / position
        totals["map@r"] += precision_sum / r
    metrics = {name: value / len(queries) for name, value in totals.items()}
    metrics.update({f"recall@{k}": metrics[f"hit@{k}"] for k in ks})
    return metrics
