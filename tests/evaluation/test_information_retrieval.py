"""information_retrieval_metrics against a plain-Python ranking written from the definitions and
against sentence-transformers' InformationRetrievalEvaluator."""

import numpy as np
import pytest

from keras_siamese.evaluation import information_retrieval_metrics, retrieval_metrics
from tests.evaluation.oracles import oracle_information_retrieval
from tests.evaluation.test_retrieval import assert_metrics_equal
from tests.harness import check_bad_input


@pytest.fixture
def judged_points():
    """(queries, corpus, relevant): 20 queries, 60 documents, 1 to 6 relevant documents per query."""
    rng = np.random.default_rng(0)
    queries, corpus = rng.normal(size=(20, 6)), rng.normal(size=(60, 6))
    relevant = [set(rng.choice(60, size=rng.integers(1, 7), replace=False).tolist()) for _ in range(20)]
    return queries, corpus, relevant


@pytest.mark.parametrize("batch_size", [None, 1, 7])
def test_matches_oracle_on_random_points(judged_points, batch_size):
    ks = (1, 3, 5, 10, 60, 100)
    actual = information_retrieval_metrics(*judged_points, ks=ks, batch_size=batch_size)
    assert_metrics_equal(actual, oracle_information_retrieval(*judged_points, ks=ks))


def test_inner_product_without_normalisation(judged_points):
    queries, corpus, relevant = judged_points
    corpus = corpus * np.random.default_rng(1).uniform(0.1, 10, size=(60, 1))  # norms now change the order
    actual = information_retrieval_metrics(queries, corpus, relevant, ks=(1, 5), normalize=False)
    assert_metrics_equal(actual, oracle_information_retrieval(queries, corpus, relevant, (1, 5), normalize=False))


def test_ties_rank_relevant_documents_after_irrelevant_ones():
    # Small integer vectors without normalisation: many exactly equal scores, also at the cut-off.
    rng = np.random.default_rng(2)
    queries, corpus = rng.integers(-1, 2, (25, 3)), rng.integers(-1, 2, (40, 3))
    relevant = [rng.choice(40, size=rng.integers(1, 9), replace=False).tolist() for _ in range(25)]
    ks = (1, 2, 5, 12)
    actual = information_retrieval_metrics(queries, corpus, relevant, ks=ks, normalize=False, batch_size=4)
    assert_metrics_equal(actual, oracle_information_retrieval(queries, corpus, relevant, ks, normalize=False))


def test_collapsed_embeddings_score_the_worst_order():
    # Every document scores the same: the relevant ones (2 of 4) rank 3rd and 4th.
    metrics = information_retrieval_metrics([[1.0, 1.0]], [[2.0, 2.0]] * 4, [{0, 3}], ks=(2, 4))
    assert metrics["accuracy@2"] == metrics["mrr@2"] == metrics["ndcg@2"] == 0.0
    assert metrics["recall@4"] == 1.0 and metrics["precision@4"] == 0.5
    assert metrics["mrr@4"] == pytest.approx(1 / 3) and metrics["map@4"] == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_repeated_and_numpy_indices_count_once(judged_points):
    queries, corpus, relevant = judged_points
    as_lists = [np.array(sorted(documents) * 2) for documents in relevant]
    assert information_retrieval_metrics(queries, corpus, as_lists) == information_retrieval_metrics(*judged_points)


def test_label_relevance_agrees_with_retrieval_metrics():
    """Relevant = same label: accuracy@k is hit@k, and over the whole corpus mrr@k is the MRR."""
    rng = np.random.default_rng(3)
    queries, corpus = rng.normal(size=(15, 4)), rng.normal(size=(30, 4))
    query_labels, corpus_labels = rng.integers(0, 3, 15), rng.integers(0, 3, 30)
    corpus_labels[:3] = [0, 1, 2]  # every label has a document
    relevant = [np.flatnonzero(corpus_labels == label) for label in query_labels]
    ir = information_retrieval_metrics(queries, corpus, relevant, ks=(1, 5, 30))
    labelled = retrieval_metrics(queries, query_labels, corpus, corpus_labels, ks=(1, 5))
    assert (ir["accuracy@1"], ir["accuracy@5"]) == (labelled["hit@1"], labelled["hit@5"])
    assert ir["mrr@30"] == pytest.approx(labelled["mrr"])


@pytest.mark.parametrize("normalize", [True, False])
def test_equals_sentence_transformers_information_retrieval_evaluator(judged_points, normalize):
    pytest.importorskip("sentence_transformers")
    import torch
    from sentence_transformers.evaluation import InformationRetrievalEvaluator
    from sentence_transformers.util import cos_sim, dot_score

    (queries, corpus), relevant = (array.astype(np.float32) for array in judged_points[:2]), judged_points[2]
    ks = [1, 3, 5, 10]

    class PrecomputedQueries:
        """Stands in for a SentenceTransformer: query text `str(i)` encodes to row `i`."""

        def encode_query(self, texts, **_):
            return torch.from_numpy(queries[[int(text) for text in texts]])

    evaluator = InformationRetrievalEvaluator(
        queries={f"q{i}": str(i) for i in range(len(queries))},
        corpus={f"d{j:03d}": f"document {j}" for j in range(len(corpus))},
        relevant_docs={f"q{i}": {f"d{j:03d}" for j in documents} for i, documents in enumerate(relevant)},
        mrr_at_k=ks, ndcg_at_k=ks, accuracy_at_k=ks, precision_recall_at_k=ks, map_at_k=ks,
        score_functions={"score": cos_sim if normalize else dot_score},
        write_csv=False,
    )
    theirs = evaluator.compute_metrices(PrecomputedQueries(), corpus_embeddings=torch.from_numpy(corpus))["score"]
    expected = {name.replace("@k", f"@{k}"): float(values[k]) for name, values in theirs.items() for k in values}
    actual = information_retrieval_metrics(queries, corpus, relevant, ks=ks, normalize=normalize)
    assert_metrics_equal(actual, expected, tolerance=1e-12)


QUERIES, CORPUS = np.eye(2), np.eye(3, 2)


def _ir(relevant=({0}, {1, 2}), **kwargs):
    return information_retrieval_metrics(QUERIES, CORPUS, relevant, **kwargs)


BAD_INPUT = {
    "information retrieval relevant per query": (lambda: _ir([{0}]), ValueError,
                                                 "relevant has 1 entries for 2 queries"),
    "information retrieval relevant mapping": (lambda: _ir({0: {0}, 1: {1}}), ValueError,
                                               "relevant must be a sequence holding one collection"),
    "information retrieval relevant scalar": (lambda: _ir(3), ValueError, "relevant must be a sequence holding one collection of corpus positions per query, got int"),
    "information retrieval no relevant document": (lambda: _ir([{0}, set()]), ValueError,
                                                   "relevant[1] is empty: query 1 has no relevant document"),
    "information retrieval index beyond the corpus": (lambda: _ir([{0}, {3}]), ValueError,
                                                      "relevant[1] holds 3, not a corpus position (an integer in [0, 3))"),
    "information retrieval negative index": (lambda: _ir([{-1}, {1}]), ValueError, "relevant[0] holds -1"),
    "information retrieval float index": (lambda: _ir([[0.0], [1]]), ValueError, "relevant[0] holds 0.0"),
    "information retrieval index not a collection": (lambda: _ir([0, 1]), ValueError,
                                                     "relevant[0] must be a collection of corpus positions, got 0"),
    "information retrieval index as a string": (lambda: _ir(["0", "1"]), ValueError,
                                                "relevant[0] must be a collection of corpus positions, got '0'"),
    "information retrieval ks 0": (lambda: _ir(ks=(1, 0)), ValueError, "ks must be positive integers, got 0"),
    "information retrieval ks empty": (lambda: _ir(ks=()), ValueError, "ks is empty"),
    "information retrieval dimension": (
        lambda: information_retrieval_metrics(QUERIES, np.ones((3, 4)), [{0}, {1}]), ValueError,
        "query embeddings have dimension 2 but the corpus has dimension 4"),
    "information retrieval NaN": (lambda: information_retrieval_metrics([[np.nan, 1.0]], CORPUS, [{0}]),
                                  ValueError, "query_embeddings contain NaN"),
    "information retrieval batch_size": (lambda: _ir(batch_size=0), ValueError, "batch_size must be a positive integer"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
