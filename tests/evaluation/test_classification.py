"""kNN classification and the classification report against plain-Python loops (and scikit-learn when present)."""

import math

import numpy as np
import pytest

from keras_siamese.evaluation import classification_report, knn_classify, knn_scores, roc_auc
from tests.harness import check_bad_input


def oracle_auc(is_positive, scores):
    """Fraction of (positive, negative) pairs ordered correctly, ties counting one half."""
    positives = [s for s, p in zip(scores, is_positive) if p]
    negatives = [s for s, p in zip(scores, is_positive) if not p]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def oracle_report(y_true, scores, num_classes):
    y_pred = [max(range(num_classes), key=lambda c: (row[c], -c)) for row in scores]
    classes = sorted(set(y_true) | set(y_pred))
    f1, support = {}, {}
    for c in classes:
        tp = sum(t == c and p == c for t, p in zip(y_true, y_pred))
        fp = sum(t != c and p == c for t, p in zip(y_true, y_pred))
        fn = sum(t == c and p != c for t, p in zip(y_true, y_pred))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1[c] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        support[c] = sum(t == c for t in y_true)
    per_class_auc = [
        oracle_auc([t == c for t in y_true], [row[c] for row in scores])
        for c in range(num_classes)
        if 0 < support.get(c, 0) < len(y_true)
    ]
    cells = [(t == c, row[c]) for t, row in zip(y_true, scores) for c in range(num_classes)]
    return {
        "accuracy": sum(t == p for t, p in zip(y_true, y_pred)) / len(y_true),
        "macro_f1": sum(f1.values()) / len(classes),
        "weighted_f1": sum(f1[c] * support[c] for c in classes) / len(y_true),
        "micro_auc": oracle_auc([p for p, _ in cells], [s for _, s in cells]),
        "macro_auc": sum(per_class_auc) / len(per_class_auc),
    }


def oracle_knn(queries, corpus, labels, k, weighting):
    """Votes of the k most similar items (corpus order on equal similarity); ties -> nearest class."""
    unit = lambda v: [x / math.sqrt(sum(y * y for y in v)) for x in v]  # noqa: E731
    predictions, shares = [], []
    for query in queries:
        similarity = [sum(a * b for a, b in zip(unit(query), unit(item))) for item in corpus]
        neighbours = sorted(range(len(corpus)), key=lambda j: (-similarity[j], j))[:k]
        weights = [1.0] * k
        if weighting == "similarity" and any(similarity[j] > 0 for j in neighbours):
            weights = [max(similarity[j], 0.0) for j in neighbours]
        votes = {}
        for j, weight in zip(neighbours, weights):
            votes[labels[j]] = votes.get(labels[j], 0.0) + weight
        best = max(votes.values())
        predictions.append(next(labels[j] for j in neighbours if math.isclose(votes[labels[j]], best)))
        shares.append({label: vote / sum(votes.values()) for label, vote in votes.items()})
    return predictions, shares


def test_roc_auc_with_ties_matches_pair_counting():
    rng = np.random.default_rng(0)
    is_positive = rng.random(60) < 0.3
    scores = rng.integers(0, 5, 60).astype(float)  # many ties
    assert roc_auc(is_positive, scores) == pytest.approx(oracle_auc(is_positive, scores))
    assert roc_auc([True, False], [0.2, 0.9]) == 0.0


def test_roc_auc_needs_both_classes():
    with pytest.raises(ValueError, match="positive and one negative"):
        roc_auc([True, True], [0.1, 0.2])


def test_report_from_scores_matches_oracle():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 4, 80)
    scores = rng.dirichlet(np.ones(4), 80) + 0.5 * np.eye(4)[y_true]  # informative, not perfect
    actual = classification_report(y_true, scores)
    expected = oracle_report(y_true.tolist(), scores.tolist(), 4)
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value), name


def test_report_agrees_with_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is the optional peer oracle")
    rng = np.random.default_rng(2)
    y_true = rng.integers(0, 5, 200)
    probabilities = rng.dirichlet(np.ones(5), 200) + np.eye(5)[y_true] * rng.random((200, 1))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    report = classification_report(y_true, probabilities)
    y_pred = probabilities.argmax(axis=1)
    assert report["accuracy"] == pytest.approx(metrics.accuracy_score(y_true, y_pred))
    assert report["macro_f1"] == pytest.approx(metrics.f1_score(y_true, y_pred, average="macro"))
    assert report["weighted_f1"] == pytest.approx(metrics.f1_score(y_true, y_pred, average="weighted"))
    assert report["macro_auc"] == pytest.approx(metrics.roc_auc_score(y_true, probabilities, multi_class="ovr"))
    assert report["micro_auc"] == pytest.approx(
        metrics.roc_auc_score(np.eye(5)[y_true], probabilities, average="micro")
    )


def test_report_from_hard_predictions_counts_classes_seen_on_either_side():
    # Class 2 is only predicted, class 3 never appears: macro F1 averages classes 0, 1, 2.
    report = classification_report([0, 0, 1, 1], [0, 2, 1, 1], num_classes=4)
    f1_class0, f1_class1, f1_class2 = 2 / 3, 1.0, 0.0
    assert report == {
        "accuracy": 0.75,
        "macro_f1": pytest.approx((f1_class0 + f1_class1 + f1_class2) / 3),
        "weighted_f1": pytest.approx((2 * f1_class0 + 2 * f1_class1) / 4),
    }


def test_macro_auc_is_left_out_when_undefined():
    report = classification_report([1, 1], [[0.2, 0.8], [0.6, 0.4]])
    assert "macro_auc" not in report
    assert report["micro_auc"] == oracle_auc([False, True, False, True], [0.2, 0.8, 0.6, 0.4])


@pytest.mark.parametrize(
    "y_true, y_pred, num_classes, message",
    [
        ([0, 1], [0], None, "2 labels but y_pred has 1"),
        ([0, 3], [0, 1], 3, "class id 3"),
        ([0, -1], [0, 1], None, "negative"),
        (["a", "b"], [0, 1], None, "integer class ids"),
        ([0, 1], [[0.5, 0.5, 0.0]] * 2, 2, "3 score columns"),
        ([0, 1], [[np.nan, 1.0]] * 2, None, "NaN"),
        ([[0, 1]], [0, 1], None, "1-D"),
    ],
)
def test_report_rejects_bad_input(y_true, y_pred, num_classes, message):
    with pytest.raises(ValueError, match=message):
        classification_report(y_true, y_pred, num_classes)


@pytest.mark.parametrize("weighting", ["uniform", "similarity"])
@pytest.mark.parametrize("k", [1, 4, 7])
def test_knn_matches_oracle(weighting, k):
    rng = np.random.default_rng(3)
    corpus, queries = rng.normal(size=(40, 5)), rng.normal(size=(25, 5))
    labels = rng.integers(0, 3, 40)
    expected_labels, expected_shares = oracle_knn(queries.tolist(), corpus.tolist(), labels.tolist(), k, weighting)
    assert knn_classify(queries, corpus, labels, k=k, weighting=weighting, batch_size=6).tolist() == expected_labels
    shares = knn_scores(queries, corpus, labels, num_classes=4, k=k, weighting=weighting)
    assert shares.shape == (25, 4)
    for row, expected in zip(shares, expected_shares):
        assert row.tolist() == pytest.approx([expected.get(c, 0.0) for c in range(4)], abs=1e-6)


def test_knn_vote_ties_go_to_the_nearest_neighbour_and_string_labels_come_back():
    corpus = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6]]
    labels = ["dog", "cat", "cat", "dog"]
    # Order by similarity to (1, 0.1): dog, dog, cat, cat -> k=4 is a 2-2 tie won by "dog".
    assert knn_classify([[1.0, 0.1]], corpus, labels, k=4).tolist() == ["dog"]
    assert knn_classify([[0.1, 1.0]], corpus, labels, k=4).tolist() == ["cat"]
    assert knn_classify([[0.1, 1.0]], corpus, [5, 9, 9, 5], k=1).tolist() == [9]


def test_similarity_votes_fall_back_to_uniform_when_all_neighbours_point_away():
    corpus = [[-1.0, 0.0], [-1.0, 0.1], [-1.0, -0.1]]
    shares = knn_scores([[1.0, 0.0]], corpus, [0, 1, 1], k=3, weighting="similarity")
    assert shares[0].tolist() == pytest.approx([1 / 3, 2 / 3])


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(k=5), r"k must be an integer in \[1, 4\]"),
        (dict(k=0), "k must be"),
        (dict(weighting="distance"), "weighting"),
        (dict(corpus_labels=[0, 1]), "2 labels for 4"),
        (dict(query_embeddings=[[1.0, 0.0, 0.0]]), "dimension"),
    ],
)
def test_knn_rejects_bad_input(change, message):
    arguments = dict(query_embeddings=[[1.0, 0.0]], corpus_embeddings=np.eye(4, 2) + 0.1, corpus_labels=[0, 1, 0, 1])
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        knn_classify(**arguments)


EMBEDDINGS = [[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0]]
LABELS = [0, 1, 0, 1]
BAD_INPUT = {
    "knn k 0": (lambda: knn_classify(EMBEDDINGS, EMBEDDINGS, LABELS, k=0), ValueError,
                "k must be an integer in [1, 4] (the corpus size), got 0"),
    "knn weighting": (lambda: knn_classify(EMBEDDINGS, EMBEDDINGS, LABELS, k=1, weighting="distance"),
                      ValueError, "weighting must be one of ('uniform', 'similarity'), got 'distance'"),
    "knn labels per corpus item": (lambda: knn_classify(EMBEDDINGS, EMBEDDINGS, LABELS[:3], k=1), ValueError,
                                   "corpus_labels has 3 labels for 4 corpus embeddings"),
    "knn_scores num_classes float": (lambda: knn_scores(EMBEDDINGS, EMBEDDINGS, LABELS, num_classes=2.5, k=1),
                                     ValueError, "num_classes must be a positive integer or None, got 2.5"),
    "knn_scores negative class": (lambda: knn_scores(EMBEDDINGS, EMBEDDINGS, [0, -1, 0, 1], k=1), ValueError,
                                  "corpus_labels has a negative class id -1"),
    "report lengths differ": (lambda: classification_report([0, 1, 1], [0, 1]), ValueError,
                              "y_true has 3 labels but y_pred has 2 predictions"),
    "report score columns": (lambda: classification_report([0, 1], [[0.2, 0.8], [0.6, 0.4]], num_classes=3),
                             ValueError, "y_pred has 2 score columns but num_classes is 3"),
    "roc_auc lengths differ": (lambda: roc_auc([True, False, True], [0.1, 0.2]), ValueError,
                               "must be 1-D of the same length, got shapes (3,) and (2,)"),
    "roc_auc NaN score": (lambda: roc_auc([True, False], [np.nan, 0.2]), ValueError,
                          "scores contain NaN values"),
    "roc_auc labels not 0/1": (lambda: roc_auc([2, 0, 1], [0.1, 0.2, 0.3]), ValueError,
                               "is_positive must hold booleans or 0/1 values"),
    "roc_auc of one class": (lambda: roc_auc([True, True], [0.1, 0.2]), ValueError,
                             "ROC AUC needs at least one positive and one negative example"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
