"""best_f1_threshold against a brute force over every threshold and against sentence-transformers'
BinaryClassificationEvaluator.find_best_f1_and_threshold."""

import dataclasses

import numpy as np
import pytest

from keras_siamese.evaluation import BestF1Threshold, best_f1_threshold
from tests.harness import check_bad_input


def brute_force(similarities, labels):
    """Keeps the pairs scoring >= each distinct similarity in turn, from the highest; the first
    best F1 wins, its threshold halfway down to the next lower similarity."""
    distinct = sorted(set(similarities), reverse=True)
    best = None
    for position, cut in enumerate(distinct):
        kept = [label for similarity, label in zip(similarities, labels) if similarity >= cut]
        true_positives = sum(kept)
        if true_positives == 0:
            continue
        precision, recall = true_positives / len(kept), true_positives / sum(labels)
        f1 = 2 * precision * recall / (precision + recall)
        if best is None or f1 > best["f1"]:
            lower = distinct[position + 1] if position + 1 < len(distinct) else cut
            best = {"threshold": (cut + lower) / 2, "f1": f1, "precision": precision, "recall": recall}
    return best


def scored_pairs(seed, count=40, decimals=None):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count)
    similarities = rng.normal(size=count) + labels  # duplicates score higher, with overlap
    if decimals is not None:
        similarities = similarities.round(decimals)  # ties
    return similarities.tolist(), labels.tolist()


@pytest.mark.parametrize("seed, decimals", [(0, None), (1, None), (2, 1), (3, 0)])
def test_matches_brute_force(seed, decimals):
    similarities, labels = scored_pairs(seed, decimals=decimals)
    actual = dataclasses.asdict(best_f1_threshold(similarities, labels))
    assert actual == pytest.approx(brute_force(similarities, labels), abs=1e-12)
    assert all(isinstance(value, float) for value in actual.values())
    # The threshold reproduces the reported precision and recall.
    kept = [label for similarity, label in zip(similarities, labels) if similarity >= actual["threshold"]]
    assert (sum(kept) / len(kept), sum(kept) / sum(labels)) == pytest.approx((actual["precision"], actual["recall"]))


@pytest.mark.parametrize("seed, decimals", [(0, None), (4, 1), (5, 0)])
def test_equals_sentence_transformers(seed, decimals):
    pytest.importorskip("sentence_transformers")
    from sentence_transformers.evaluation import BinaryClassificationEvaluator

    similarities, labels = scored_pairs(seed, count=200, decimals=decimals)
    f1, precision, recall, threshold = BinaryClassificationEvaluator.find_best_f1_and_threshold(
        np.array(similarities), np.array(labels), True
    )
    assert best_f1_threshold(similarities, labels) == BestF1Threshold(threshold, f1, precision, recall)


def test_every_pair_kept_takes_the_lowest_similarity_and_labels_may_be_bools():
    assert best_f1_threshold([0.2, 0.9, 0.5], [True, True, True]) == BestF1Threshold(0.2, 1.0, 1.0, 1.0)


BAD_INPUT = {
    "best F1 label 2": (lambda: best_f1_threshold([0.1, 0.2], [0, 2]), ValueError,
                        "labels must be a 1-D list of 0s and 1s (1: duplicate), got [0, 2]"),
    "best F1 label strings": (lambda: best_f1_threshold([0.1, 0.2], ["yes", "no"]), ValueError,
                              "labels must be a 1-D list of 0s and 1s"),
    "best F1 lengths differ": (lambda: best_f1_threshold([0.1, 0.2, 0.3], [0, 1]), ValueError,
                               "similarities and labels must have one entry per pair, got 3 and 2"),
    "best F1 no duplicate": (lambda: best_f1_threshold([0.1, 0.2], [0, 0]), ValueError,
                             "labels hold no duplicate (1)"),
    "best F1 NaN": (lambda: best_f1_threshold([0.1, float("nan")], [0, 1]), ValueError,
                    "similarities must be finite numbers"),
    "best F1 infinity": (lambda: best_f1_threshold([float("inf"), 0.2], [0, 1]), ValueError,
                         "similarities must be finite numbers"),
    "best F1 one pair": (lambda: best_f1_threshold([0.5], [1]), ValueError,
                         "similarities must be a 1-D list of at least 2 numbers"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
