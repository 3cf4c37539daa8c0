"""Chunked exact top-k and the embedding checks, against brute-force loops."""

import ml_dtypes
import numpy as np
import pytest

from keras_siamese.search.exact import check_embeddings, exact_top_k, l2_normalize
from tests.harness import check_bad_input


def oracle_top_k(queries, corpus, k):
    """Sorts every corpus row by (-inner product, position)."""
    results = []
    for query in queries.tolist():
        scores = [sum(a * b for a, b in zip(query, row)) for row in corpus.tolist()]
        order = sorted(range(len(scores)), key=lambda j: (-scores[j], j))[:k]
        results.append((order, [scores[j] for j in order]))
    return results


@pytest.mark.parametrize("batch_size", [None, 1, 4])
def test_top_k_matches_brute_force_with_ties(batch_size):
    rng = np.random.default_rng(0)
    queries = rng.integers(-2, 3, (9, 3)).astype("float32")  # integers: exact, frequently equal scores
    corpus = rng.integers(-2, 3, (30, 3)).astype("float32")
    scores, indices = exact_top_k(queries, corpus, k=7, batch_size=batch_size)
    assert indices.dtype == np.int64 and scores.dtype == np.float32
    for row, (order, expected_scores) in enumerate(oracle_top_k(queries, corpus, 7)):
        assert indices[row].tolist() == order
        assert scores[row].tolist() == expected_scores


def test_k_must_fit_the_corpus():
    with pytest.raises(ValueError, match=r"k must be in \[1, 3\]"):
        exact_top_k(np.ones((1, 2), "float32"), np.ones((3, 2), "float32"), k=4)


def test_l2_normalize_keeps_zero_rows():
    normalised = l2_normalize([[3.0, 4.0], [0.0, 0.0]])
    assert normalised.tolist() == [[pytest.approx(0.6), pytest.approx(0.8)], [0.0, 0.0]]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int32", "float64"])
def test_low_precision_and_integer_embeddings_become_float32(dtype):
    values = np.array([[1.5, -2.0]]).astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
    checked = check_embeddings(values)
    assert checked.dtype == np.float32 and checked.tolist() == [[1.5 if dtype != "int32" else 1.0, -2.0]]


@pytest.mark.parametrize(
    "embeddings, message",
    [
        (np.ones(3), "2-D"),
        (np.ones((0, 3)), "empty"),
        ([[1.0, np.inf]], "NaN or infinite"),
        ([["a", "b"]], "numeric"),
        (np.ones((2, 2), bool), "numeric"),
    ],
)
def test_bad_embeddings_raise(embeddings, message):
    with pytest.raises(ValueError, match=message):
        check_embeddings(embeddings)


EMBEDDINGS = [[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0]]
EYE = np.eye(2, dtype="float32")
BAD_INPUT = {
    "exact_top_k k float": (lambda: exact_top_k(EYE, EYE, k=1.5), ValueError,
                            "k must be in [1, 2] (the corpus size), got 1.5"),
    "exact_top_k k beyond corpus": (lambda: exact_top_k(EYE, EYE, k=3), ValueError, "got 3"),
    "exact_top_k dimensions differ": (lambda: exact_top_k(np.eye(3, dtype="float32"), EYE, k=1), ValueError,
                                      "query embeddings have dimension 3 but the corpus has dimension 2"),
    "l2_normalize NaN": (lambda: l2_normalize([[np.nan, 1.0]]), ValueError, "contain NaN or infinite values"),
    "l2_normalize rank 1": (lambda: l2_normalize([3.0, 4.0]), ValueError, "must be 2-D [count, dimension]"),
    "l2_normalize epsilon 0": (lambda: l2_normalize(EMBEDDINGS, epsilon=0), ValueError,
                               "epsilon must be a finite number > 0, got 0"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
