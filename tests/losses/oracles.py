"""Plain-Python reference implementations written from the loss definitions.

Deliberately loop-based (python floats, nested for-loops) and independent of the
vectorised code under test.
"""

import math


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
    """Mean of the positive terms max(margin + d_ap - d_an, 0) over all valid triplets."""
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
                if term > 0:
                    total += term
                    active += 1
    return total / active if active else 0.0
