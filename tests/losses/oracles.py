"""Plain-Python reference implementations written from the loss definitions.

Deliberately loop-based (python floats, nested for-loops) and independent of the
vectorised code under test.
"""

import math

import numpy as np


def distance_matrix(embeddings, distance):
    """Pairwise distances with python floats: L2, squared-L2 or angular."""
    rows = [[float(v) for v in row] for row in embeddings]
    n = len(rows)
    out = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            if distance == "angular":
                dot = sum(x * y for x, y in zip(rows[i], rows[j]))
                norm_i = math.sqrt(sum(x * x for x in rows[i]))
                norm_j = math.sqrt(sum(y * y for y in rows[j]))
                out[i][j] = max(1.0 - dot / (norm_i * norm_j), 0.0)
            else:
                squared = sum((x - y) ** 2 for x, y in zip(rows[i], rows[j]))
                out[i][j] = squared if distance == "squared-L2" else math.sqrt(squared)
    return out


def semihard(labels, dist, margin):
    """Mean over (a, p) of max(margin + d_ap - d_an, 0), semi-hard n (TFA's rules)."""
    n = len(labels)
    total, pairs = 0.0, 0
    for a in range(n):
        negatives = [dist[a][k] for k in range(n) if labels[k] != labels[a]]
        for p in range(n):
            if p == a or labels[p] != labels[a]:
                continue
            farther = [d for d in negatives if d > dist[a][p]]
            if farther:
                d_an = min(farther)
            elif negatives:
                d_an = max(negatives)
            else:
                d_an = 0.0
            total += max(margin + dist[a][p] - d_an, 0.0)
            pairs += 1
    return total / pairs if pairs else 0.0


def batch_hard(labels, dist, margin, soft_margin=False):
    """Mean over anchors with a positive and a negative of the hardest-triplet term."""
    n = len(labels)
    total, anchors = 0.0, 0
    for a in range(n):
        positives = [dist[a][k] for k in range(n) if k != a and labels[k] == labels[a]]
        negatives = [dist[a][k] for k in range(n) if labels[k] != labels[a]]
        if not positives or not negatives:
            continue
        gap = max(positives) - min(negatives)
        total += math.log1p(math.exp(gap)) if soft_margin else max(margin + gap, 0.0)
        anchors += 1
    return total / anchors if anchors else 0.0


def batch_all(labels, dist, margin):
    """Mean of the positive terms max(margin + d_ap - d_an, 0) over all valid triplets.

    Whether a term is positive is decided in float32 arithmetic, as the loss computes
    it: a term within rounding of zero must count the same way on both sides.
    """
    n = len(labels)
    total, active = 0.0, 0
    for a in range(n):
        for p in range(n):
            if p == a or labels[p] != labels[a]:
                continue
            for k in range(n):
                if labels[k] == labels[a]:
                    continue
                term = margin + dist[a][p] - dist[a][k]
                if np.float32(margin) + np.float32(dist[a][p]) - np.float32(dist[a][k]) > 0:
                    total += term
                    active += 1
    return total / active if active else 0.0


def contrastive(labels, first, second, margin, distance, online=False):
    """(Online) contrastive loss over pairs: mean (or, online, hard-pair sum) of the terms."""
    d = [pair_distance(a, b, distance) for a, b in zip(first, second)]
    similar = [float(y) > 0.5 for y in labels]
    if not online:
        terms = [0.5 * (d_i * d_i if s else max(margin - d_i, 0.0) ** 2) for d_i, s in zip(d, similar)]
        return sum(terms) / len(terms) if terms else 0.0
    positives = [d_i for d_i, s in zip(d, similar) if s]
    negatives = [d_i for d_i, s in zip(d, similar) if not s]
    closest_negative = min(negatives) if negatives else -math.inf
    farthest_positive = max(positives) if positives else math.inf
    total = 0.0
    for d_i, s in zip(d, similar):
        if s and d_i > closest_negative:
            total += d_i * d_i
        if not s and d_i < farthest_positive:
            total += max(margin - d_i, 0.0) ** 2
    return total


def pair_distance(a, b, distance):
    """Euclidean or cosine (1 - cosine similarity) distance of two vectors."""
    a = [float(v) for v in a]
    b = [float(v) for v in b]
    if distance == "euclidean":
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
    return 1.0 - cosine(a, b)


def cosine(a, b):
    dot = sum(float(x) * float(y) for x, y in zip(a, b))
    return dot / (math.sqrt(sum(float(x) ** 2 for x in a)) * math.sqrt(sum(float(y) ** 2 for y in b)))


def multiple_negatives_ranking(anchors, candidates, scale, symmetric):
    """Mean over anchors of -log softmax(scale * cos) at the anchor's own positive."""
    n = len(anchors)

    def cross_entropy(scores, target):
        top = max(scores)
        return -(scores[target] - top - math.log(sum(math.exp(s - top) for s in scores)))

    forward = sum(
        cross_entropy([scale * cosine(anchors[i], c) for c in candidates], i) for i in range(n)
    ) / n
    if not symmetric:
        return forward
    backward = sum(
        cross_entropy([scale * cosine(candidates[i], a) for a in anchors], i) for i in range(n)
    ) / n
    return (forward + backward) / 2.0


def semihard_negative(labels, dist, a, p):
    """The distance to the semi-hard negative of pair (a, p) (TFA's rules)."""
    negatives = [dist[a][k] for k in range(len(labels)) if labels[k] != labels[a]]
    farther = [d for d in negatives if d > dist[a][p]]
    if farther:
        return min(farther)
    return max(negatives) if negatives else 0.0
