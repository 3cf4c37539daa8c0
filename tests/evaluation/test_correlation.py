"""Spearman and Pearson correlation against the definition (plain Python) and SciPy."""

import math

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from keras_siamese.evaluation import pair_similarity_correlation, pearson_correlation, spearman_correlation


def mean_ranks(values):
    """Rank i+1 for the i-th smallest value; equal values get the mean of their ranks."""
    ordered = sorted(values)
    return [sum(i + 1 for i, v in enumerate(ordered) if v == x) / ordered.count(x) for x in values]


def pearson_loop(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    covariance = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return covariance / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


@pytest.mark.parametrize("size, levels", [(2, 100), (7, 3), (50, 6), (300, 1000)])
def test_spearman_is_pearson_of_mean_ranks_and_matches_scipy(size, levels):
    rng = np.random.default_rng(size)
    x = rng.integers(levels, size=size).astype(float)  # ties when levels are few
    y = x + rng.normal(scale=levels / 3, size=size)
    want = pearson_loop(mean_ranks(list(x)), mean_ranks(list(y)))
    assert spearman_correlation(x, y) == pytest.approx(want, abs=1e-12)
    assert spearman_correlation(x, y) == pytest.approx(scipy.stats.spearmanr(x, y).statistic, abs=1e-12)
    assert pearson_correlation(x, y) == pytest.approx(scipy.stats.pearsonr(x, y).statistic, abs=1e-12)


def test_a_constant_list_has_no_correlation():
    assert math.isnan(spearman_correlation([1, 1, 1], [1, 2, 3]))
    assert math.isnan(pearson_correlation([1, 2, 3], [4, 4, 4]))


@pytest.mark.parametrize(
    "x, y, message",
    [([1.0], [1.0], "at least 2"), ([1, 2], [1, 2, 3], "same length"), ([1, float("nan")], [1, 2], "finite"),
     ("ab", [1, 2], "1-D"), ([[1, 2]], [[1, 2]], "1-D")],
)
def test_bad_score_lists(x, y, message):
    with pytest.raises(ValueError, match=message):
        spearman_correlation(x, y)


def test_pair_similarity_correlation_scores_the_cosines_of_the_pairs():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(60, 6))
    table = tf.constant(vectors, tf.float32)
    model = lambda texts: tf.gather(table, tf.strings.to_number(tf.strings.substr(texts, 1, 9), tf.int32))  # noqa: E731
    first, second = rng.permutation(30), 30 + rng.permutation(30)  # no pair twice: no tied cosines
    scores = rng.random(30) * 5
    got = pair_similarity_correlation(model, [f"t{i}" for i in first], [f"t{i}" for i in second], scores, batch_size=7)
    cosines = [float(np.dot(vectors[a], vectors[b]) / np.linalg.norm(vectors[a]) / np.linalg.norm(vectors[b]))
               for a, b in zip(first, second)]
    assert got["spearman"] == pytest.approx(pearson_loop(mean_ranks(cosines), mean_ranks(list(scores))), abs=1e-6)
    assert got["pearson"] == pytest.approx(pearson_loop(cosines, list(scores)), abs=1e-5)
    with pytest.raises(ValueError, match="one entry per pair"):
        pair_similarity_correlation(model, ["t0", "t1"], ["t2"], [1.0, 2.0])
