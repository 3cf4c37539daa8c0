"""retrieval_metrics against a plain-Python ranking written from the definitions."""

import zlib

import numpy as np
import pytest

from keras_siamese.evaluation import retrieval_metrics
from tests.evaluation.oracles import oracle_metrics
from tests.harness import check_bad_input


def assert_metrics_equal(actual, expected, tolerance=1e-9):
    assert sorted(actual) == sorted(expected)
    for name in expected:
        assert actual[name] == pytest.approx(expected[name], abs=tolerance), name
        assert isinstance(actual[name], float)


@pytest.fixture
def labelled_points():
    rng = np.random.default_rng(0)
    queries, corpus = rng.normal(size=(30, 6)), rng.normal(size=(50, 6))
    return queries, rng.integers(0, 4, 30), corpus, rng.integers(0, 4, 50)


@pytest.mark.parametrize("batch_size", [None, 1, 7])
def test_matches_oracle_on_random_points(labelled_points, batch_size):
    ks = (1, 3, 5, 50, 100)
    actual = retrieval_metrics(*labelled_points, ks=ks, batch_size=batch_size)
    assert_metrics_equal(actual, oracle_metrics(*labelled_points, ks=ks))


def test_string_labels_give_the_same_numbers_as_integer_labels(labelled_points):
    queries, query_labels, corpus, corpus_labels = labelled_points
    names = np.array(["noun.animal", "noun.food", "verb.motion", "adj.all"])
    as_strings = retrieval_metrics(queries, names[query_labels], corpus, names[corpus_labels].tolist())
    assert as_strings == retrieval_metrics(*labelled_points)


def test_ties_rank_relevant_items_after_irrelevant_ones():
    # Small integer vectors without normalisation: many exactly equal scores.
    rng = np.random.default_rng(1)
    queries, corpus = rng.integers(-1, 2, (25, 3)), rng.integers(-1, 2, (40, 3))
    query_labels, corpus_labels = rng.integers(0, 3, 25), rng.integers(0, 3, 40)
    ks = (1, 2, 5)
    actual = retrieval_metrics(queries, query_labels, corpus, corpus_labels, ks=ks, normalize=False, batch_size=4)
    expected = oracle_metrics(queries, query_labels, corpus, corpus_labels, ks, normalize=False)
    assert_metrics_equal(actual, expected)


def test_collapsed_embeddings_score_no_better_than_worst_case():
    # Every item scores the same; the single relevant item ranks last of three.
    metrics = retrieval_metrics([[1.0, 1.0]], ["a"], [[2.0, 2.0]] * 3, ["b", "a", "b"], ks=(1, 3))
    assert metrics == {"hit@1": 0.0, "hit@3": 1.0, "mrr": 1 / 3, "map@r": 0.0}


def test_query_with_label_absent_from_corpus_counts_as_a_miss():
    corpus = [[1.0, 0.0], [0.0, 1.0]]
    metrics = retrieval_metrics([[1.0, 0.1], [1.0, 0.1]], ["x", "missing"], corpus, ["x", "y"], ks=(1,))
    assert metrics == {"hit@1": 0.5, "mrr": 0.5, "map@r": 0.5}


def test_hand_computed_map_at_r():
    # Ranking by score: rel, irr, rel, irr, rel -> R = 3, AP@R = (1/1 + 2/3) / 3.
    corpus = [[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.0, 1.0]]
    metrics = retrieval_metrics([[1.0, 0.0]], [1], corpus, [1, 0, 1, 0, 1], ks=(2,), normalize=False)
    assert metrics["map@r"] == pytest.approx((1 + 2 / 3) / 3)
    assert metrics["mrr"] == 1.0


@pytest.mark.parametrize("batch_size", [None, 3])
def test_exclude_self_is_leave_one_out(batch_size):
    rng = np.random.default_rng(2)
    points = rng.normal(size=(20, 4))
    points[5] = points[6]  # a duplicate of another item still counts
    labels = rng.integers(0, 3, 20)
    labels[5], labels[6] = 0, 1
    labels[19] = 7  # alone in its class: no relevant item once it is left out
    ks = (1, 5)
    actual = retrieval_metrics(points, labels, points, labels, ks=ks, exclude_self=True, batch_size=batch_size)
    assert_metrics_equal(actual, oracle_metrics(points, labels, points, labels, ks, exclude_self=True))
    # Without it each item finds itself first, except the duplicates: each ties
    # with its twin of another label and loses the tie.
    assert retrieval_metrics(points, labels, points, labels, ks=ks)["hit@1"] == 18 / 20


def test_unnormalised_and_low_precision_inputs():
    rng = np.random.default_rng(3)
    queries, corpus = rng.normal(size=(10, 8)) * 50, rng.normal(size=(15, 8)) * 0.01
    query_labels, corpus_labels = rng.integers(0, 2, 10), rng.integers(0, 2, 15)
    expected = oracle_metrics(queries, query_labels, corpus, corpus_labels, (1, 5))
    assert_metrics_equal(retrieval_metrics(queries, query_labels, corpus, corpus_labels), expected)
    half = retrieval_metrics(queries.astype(np.float16), query_labels, corpus.astype(np.float16), corpus_labels)
    expected_half = oracle_metrics(
        queries.astype(np.float16), query_labels, corpus.astype(np.float16), corpus_labels, (1, 5)
    )
    assert_metrics_equal(half, expected_half)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(corpus_embeddings=np.ones((4, 3))), "dimension"),
        (dict(query_embeddings=np.ones(2)), "2-D"),
        (dict(query_embeddings=[[np.nan, 1.0]]), "NaN"),
        (dict(query_labels=[0, 1]), "one label per embedding"),
        (dict(corpus_labels=["a", 1, 0, 0]), "all be integers or all be strings"),
        (dict(query_labels=["a"]), "all be integers or all be strings"),
        (dict(ks=(0,)), "positive integers"),
        (dict(ks=()), "empty"),
        (dict(exclude_self=True), "exclude_self"),
        (dict(batch_size=0), "batch_size"),
    ],
)
def test_bad_input_raises_a_clear_error(change, message):
    arguments = dict(
        query_embeddings=[[1.0, 0.0]],
        query_labels=[0],
        corpus_embeddings=np.eye(4, 2),
        corpus_labels=[0, 1, 0, 0],
    )
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        retrieval_metrics(**arguments)


EMBEDDINGS = [[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0]]
LABELS = [0, 1, 0, 1]


def _retrieval(**kwargs):
    return retrieval_metrics(EMBEDDINGS, LABELS, EMBEDDINGS, LABELS, **kwargs)


BAD_INPUT = {
    "retrieval ks 0": (lambda: _retrieval(ks=(0,)), ValueError, "ks must be positive integers, got 0"),
    "retrieval ks float": (lambda: _retrieval(ks=1.5), ValueError, "ks must be positive integers, got 1.5"),
    "retrieval ks empty": (lambda: _retrieval(ks=()), ValueError, "ks is empty"),
    "retrieval labels per query": (lambda: retrieval_metrics(EMBEDDINGS, LABELS[:3], EMBEDDINGS, LABELS),
                                   ValueError, "query_labels must hold one label per embedding (4), got"),
    "retrieval exclude_self of other queries": (
        lambda: retrieval_metrics(EMBEDDINGS[:1], LABELS[:1], EMBEDDINGS, LABELS, exclude_self=True),
        ValueError, "exclude_self needs the queries to be the corpus"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])


def test_glosses_held_out_against_training_texts(glosses):
    """The main job's call: hashed bag-of-words embeddings of real glosses beat chance."""
    texts, labels = glosses
    # Slight noise breaks exact ties (float32 and float64 could order them differently).
    embeddings = np.random.default_rng(0).normal(0, 1e-3, (len(texts), 64)).astype(np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            embeddings[row, zlib.crc32(word.encode()) % 64] += 1
    held_out = np.arange(len(texts)) % 10 == 0
    metrics = retrieval_metrics(embeddings[held_out], labels[held_out], embeddings[~held_out], labels[~held_out])
    expected = oracle_metrics(embeddings[held_out][:20], labels[held_out][:20], embeddings[~held_out],
                              labels[~held_out], (1, 5))
    partial = retrieval_metrics(embeddings[held_out][:20], labels[held_out][:20], embeddings[~held_out],
                                labels[~held_out])
    # Near-equal scores (within float32 rounding) may still swap: allow ~one swap.
    assert_metrics_equal(partial, expected, tolerance=1e-4)
    assert metrics["hit@5"] >= metrics["hit@1"] > 1 / 12
