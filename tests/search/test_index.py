"""EmbeddingIndex: exact search vs brute force, faiss vs exact, atomic save/load."""

import functools
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_siamese.search import EmbeddingIndex, faiss_available
from keras_siamese.artifacts import UnreadableFileError
from keras_siamese.search import index as index_module
from tests.harness import check_bad_input, scratch_dir

needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss-cpu is not installed (pip install faiss-cpu)")


def brute_force(queries, corpus, k, cosine=True):
    """Every (score, position) per query, sorted by -score then position, first k."""
    if cosine:
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        corpus = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    results = []
    for query in queries:
        scores = [float(np.dot(query, row)) for row in corpus]
        order = sorted(range(len(corpus)), key=lambda j: (-scores[j], j))[:k]
        results.append((order, [scores[j] for j in order]))
    return results


@pytest.fixture
def points():
    rng = np.random.default_rng(0)
    return rng.normal(size=(12, 16)), rng.normal(size=(200, 16)) * rng.uniform(0.5, 3, (200, 1))


@pytest.mark.parametrize("normalize", [True, False])
def test_exact_search_matches_brute_force(points, normalize):
    queries, corpus = points
    scores, indices = EmbeddingIndex(corpus, normalize=normalize, batch_size=5).search(queries, k=8)
    for row, (order, expected) in enumerate(brute_force(queries, corpus, 8, cosine=normalize)):
        assert indices[row].tolist() == order
        np.testing.assert_allclose(scores[row], expected, rtol=1e-5, atol=1e-5)


def test_k_beyond_the_index_returns_every_item_ranked():
    index = EmbeddingIndex([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    scores, indices = index.search([[0.0, 1.0]], k=10)
    assert indices.tolist() == [[1, 2, 0]]
    assert scores.shape == (1, 3)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda index: index.search(np.ones((1, 3)), k=1), "dimension 3 but the corpus has dimension 2"),
        (lambda index: index.search(np.ones((1, 2)), k=0), "positive integer"),
        (lambda index: index.search(np.ones(2), k=1), "2-D"),
    ],
)
def test_bad_queries_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call(EmbeddingIndex(np.eye(2)))


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(texts=["only one"]), "texts has 1 items for 2"),
        (dict(ids="ab"), "not a single string"),
        (dict(backend="annoy"), "backend must be one of"),
    ],
)
def test_bad_construction_raises(arguments, message):
    with pytest.raises(ValueError, match=message):
        EmbeddingIndex(np.eye(2), **arguments)


EMBEDDINGS = [[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0]]
LABELS = [0, 1, 0, 1]


def _index(**kwargs):
    return EmbeddingIndex(EMBEDDINGS, **kwargs)


@functools.cache
def _files():
    """An index, a .keras model and damaged or foreign copies, in one scratch directory."""
    root = scratch_dir()
    EmbeddingIndex(np.eye(3, dtype="float32")).save(root / "index.npz")
    data = (root / "index.npz").read_bytes()
    (root / "empty.npz").write_bytes(b"")
    (root / "truncated.npz").write_bytes(data[: len(data) // 2])
    np.savez(root / "other.npz", values=np.ones(2))
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]).save(root / "model.keras")
    return root


def _file(name):
    return _files() / name


BAD_INPUT = {
    "index k 0": (lambda: _index().search(EMBEDDINGS, k=0), ValueError,
                  "k must be a positive integer, got 0."),
    "index nprobe 0": (lambda: _index(nprobe=0), ValueError, "nprobe must be a positive integer, got 0"),
    "index nlist 2.5": (lambda: _index(nlist=2.5), ValueError, "nlist must be a positive integer, got 2.5"),
    "index k bool": (lambda: _index().search(EMBEDDINGS, k=True), ValueError, "got True"),
    "index query of another dimension": (lambda: _index().search([[1.0, 0.0, 0.0]]), ValueError,
                                         "query embeddings have dimension 3 but the corpus has dimension 2"),
    "index unknown backend": (lambda: _index(backend="annoy"), ValueError,
                              "backend must be one of ('exact', 'faiss', 'faiss-ivf', 'auto'), got 'annoy'"),
    "index ids of another length": (lambda: _index(ids=[7]), ValueError, "ids has 1 items for 4 embeddings"),
    "index texts as one string": (lambda: _index(texts="abcd"), ValueError,
                                  "texts must be a sequence, not a single string"),
    "index labels of another length": (lambda: _index(labels=LABELS + [0]), ValueError,
                                       "labels has 5 items for 4 embeddings"),
    "index of no embeddings": (lambda: EmbeddingIndex(np.zeros((0, 2))), ValueError,
                               "embeddings is empty (shape (0, 2))"),
    "index NaN embedding": (lambda: EmbeddingIndex([[np.nan, 1.0]]), ValueError,
                            "embeddings contain NaN or infinite values"),
    "index embeddings of rank 1": (lambda: EmbeddingIndex([0.0, 1.0]), ValueError,
                                   "embeddings must be 2-D [count, dimension], got shape (2,)"),
    "index string embeddings": (lambda: EmbeddingIndex([["a", "b"]]), ValueError,
                                "embeddings must be a numeric array, got list"),
    "index batch_size 0": (lambda: _index(batch_size=0).search(EMBEDDINGS, k=1), ValueError,
                           "batch_size must be a positive integer or None, got 0"),
    "index ids that cannot be saved": (lambda: _index(ids=[1, "b", 3, 4]).save(scratch_dir() / "index.npz"),
                                       ValueError, "To save, ids must be all strings or all numbers"),
    "index empty": (lambda: EmbeddingIndex.load(_file("empty.npz")), UnreadableFileError,
                    "empty.npz is not a readable index file (EmbeddingIndex.save): it is empty (0 bytes)"),
    "index truncated": (lambda: EmbeddingIndex.load(_file("truncated.npz")), UnreadableFileError,
                        "truncated.npz is not a readable index file (EmbeddingIndex.save): File is not a zip"),
    "index of another .npz": (lambda: EmbeddingIndex.load(_file("other.npz")), UnreadableFileError,
                              "it has no embeddings and config arrays"),
    "index that is a .keras file": (lambda: EmbeddingIndex.load(_file("model.keras")), UnreadableFileError,
                                    "model.keras is not a readable index file"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])


def test_faiss_backends_need_faiss(monkeypatch):
    monkeypatch.setattr(index_module, "faiss_available", lambda: False)
    with pytest.raises(ValueError, match="pip install faiss-cpu"):
        EmbeddingIndex(np.eye(2), backend="faiss")
    assert EmbeddingIndex(np.eye(2), backend="auto").backend == "exact"


@needs_faiss
def test_faiss_flat_equals_exact(points):
    queries, corpus = points
    exact_scores, exact_indices = EmbeddingIndex(corpus).search(queries, k=10)
    faiss_scores, faiss_indices = EmbeddingIndex(corpus, backend="faiss").search(queries, k=10)
    np.testing.assert_array_equal(faiss_indices, exact_indices)
    np.testing.assert_allclose(faiss_scores, exact_scores, atol=1e-5)
    assert EmbeddingIndex(corpus, backend="auto").backend == "faiss"


@needs_faiss
def test_faiss_ivf_probing_every_cell_is_exact(points):
    queries, corpus = points
    exact_scores, exact_indices = EmbeddingIndex(corpus).search(queries, k=5)
    ivf = EmbeddingIndex(corpus, backend="faiss-ivf", nlist=4, nprobe=4)
    ivf_scores, ivf_indices = ivf.search(queries, k=5)
    np.testing.assert_array_equal(ivf_indices, exact_indices)
    np.testing.assert_allclose(ivf_scores, exact_scores, atol=1e-5)
    assert EmbeddingIndex(corpus, backend="faiss-ivf").nlist == 200 // 39
    with pytest.raises(ValueError, match="nlist must be in"):
        EmbeddingIndex(corpus[:3], backend="faiss-ivf", nlist=5)


def test_save_and_load_round_trip_in_a_fresh_process(points, tmp_path):
    queries, corpus = points
    ids = list(range(1000, 1200))
    texts = [f"text {i}" for i in range(200)]
    labels = [["noun", "verb"][i % 2] for i in range(200)]
    index = EmbeddingIndex(corpus, ids=ids, texts=texts, labels=labels)
    path = str(tmp_path / "index.npz")
    index.save(path)
    np.save(tmp_path / "queries.npy", queries)
    script = (
        "import json, sys, numpy as np\n"
        "from keras_siamese.search import EmbeddingIndex\n"
        f"index = EmbeddingIndex.load({path!r})\n"
        f"scores, indices = index.search(np.load({str(tmp_path / 'queries.npy')!r}), k=4)\n"
        "print(json.dumps({'indices': indices.tolist(), 'scores': scores.tolist(), 'ids': index.ids,\n"
        "    'texts': index.texts, 'labels': index.labels, 'normalize': index.normalize}))\n"
    )
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    reloaded = json.loads(output.strip().splitlines()[-1])
    scores, indices = index.search(queries, k=4)
    assert reloaded["indices"] == indices.tolist()
    assert reloaded["scores"] == scores.tolist()
    assert (reloaded["ids"], reloaded["texts"], reloaded["labels"]) == (ids, texts, labels)
    assert reloaded["normalize"] is True


def test_saving_over_an_index_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "index"  # no extension: the file is still written at exactly this path
    EmbeddingIndex(np.eye(3), texts=["a", "b", "c"]).save(path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        EmbeddingIndex(np.eye(3) * 2, texts=["x", "y", "z"]).save(path)
    assert os.listdir(tmp_path) == ["index"]  # no partial file left behind
    assert EmbeddingIndex.load(path).texts == ["a", "b", "c"]


def test_unsavable_metadata_is_refused(tmp_path):
    index = EmbeddingIndex(np.eye(2), ids=[1, "b"])
    with pytest.raises(ValueError, match="all strings or all numbers"):
        index.save(tmp_path / "index.npz")
    assert not os.listdir(tmp_path)


def test_loading_something_else_fails_clearly(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, embeddings=np.eye(2), config=np.array(json.dumps({"format_version": 99})))
    with pytest.raises(ValueError, match="not a keras_siamese index"):
        EmbeddingIndex.load(path)
