"""A nearest-neighbour index over embeddings: exact by default, faiss when asked, saved atomically."""

import importlib.util
import json
import math

import numpy as np

from keras_siamese.artifacts import UnreadableFileError, check_zip_archive, reading
from keras_siamese.atomic import atomic_file_path
from keras_siamese.checks import check_integer
from keras_siamese.search.exact import (
    check_embeddings,
    check_same_dimension,
    chunk_rows,
    exact_top_k,
    l2_normalize,
)

BACKENDS = ("exact", "faiss", "faiss-ivf", "auto")
_FORMAT_VERSION = 1
_INDEX_FILE = "index file (EmbeddingIndex.save)"


def faiss_available():
    """Whether the optional `faiss` package (`pip install faiss-cpu`) can be imported."""
    return importlib.util.find_spec("faiss") is not None


class EmbeddingIndex:
    """Finds the stored embeddings most similar to query embeddings.

    Similarity is the cosine (`normalize=True`: stored embeddings and queries
    are L2-normalised) or the plain inner product (`normalize=False`).

    Backends:
    - `"exact"`: TensorFlow matmul + `top_k` over query chunks; equal scores
      are ordered by position, lower index first.
    - `"faiss"`: faiss `IndexFlatIP`, also exact, usually faster on large
      corpora; the order of equal scores is faiss's.
    - `"faiss-ivf"`: faiss `IndexIVFFlat` (inverted lists, `nlist` k-means
      cells, `nprobe` searched per query): approximate, for corpora of
      hundreds of thousands or more; needs at least `nlist` embeddings.
    - `"auto"`: `"faiss"` when faiss is installed, else `"exact"`.

    Args:
        embeddings: `[n, d]` float array, `n >= 1`.
        ids: optional `n` identifiers (all strings or all integers to save).
        texts: optional `n` texts.
        labels: optional `n` labels.
        normalize: L2-normalise (cosine similarity); otherwise inner product.
        backend: one of `BACKENDS`.
        nlist: IVF cells; default `4 * sqrt(n)`, at most `n // 39`, at least 1.
        nprobe: IVF cells searched per query.
        batch_size: queries scored at once by the exact backend.

    Example:
    >>> index = EmbeddingIndex([[1.0, 0.0], [0.0, 1.0]], texts=["east", "north"])
    >>> scores, indices = index.search([[0.9, 0.2]], k=1)
    >>> index.texts[indices[0, 0]]
    'east'
    """

    def __init__(
        self,
        embeddings,
        ids=None,
        texts=None,
        labels=None,
        normalize=True,
        backend="exact",
        nlist=None,
        nprobe=16,
        batch_size=None,
    ):
        embeddings = check_embeddings(embeddings, "embeddings")
        self.embeddings = l2_normalize(embeddings) if normalize else embeddings
        size = len(embeddings)
        self.ids = _check_column(ids, "ids", size)
        self.texts = _check_column(texts, "texts", size)
        self.labels = _check_column(labels, "labels", size)
        self.normalize = normalize
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
        if backend == "auto":
            backend = "faiss" if faiss_available() else "exact"
        if backend.startswith("faiss") and not faiss_available():
            raise ValueError(f"backend {backend!r} needs faiss: pip install faiss-cpu.")
        self.backend = backend
        self.nlist = _default_nlist(size) if nlist is None else check_integer(nlist, "nlist")
        self.nprobe = check_integer(nprobe, "nprobe")
        self.batch_size = None if batch_size is None else chunk_rows(size, batch_size)
        self._faiss_index = self._build_faiss() if backend.startswith("faiss") else None

    def __len__(self):
        return len(self.embeddings)

    @property
    def dimension(self):
        """Length of each embedding."""
        return self.embeddings.shape[1]

    def search(self, query_embeddings, k=10):
        """The `k` most similar stored embeddings for each query, best first.

        `k` larger than the index is cut to the index size (every item is
        returned, ranked), so the result has `min(k, len(self))` columns.

        Args:
            query_embeddings: `[q, d]` float array, `d == self.dimension`.
            k: positive integer.

        Returns:
            `(scores, indices)`: float32 and int64 `[q, min(k, len(self))]`
            numpy arrays; `indices` are positions in the index (look up
            `ids`, `texts`, `labels` with them).
        """
        queries = check_embeddings(query_embeddings, "query_embeddings")
        check_same_dimension(queries, self.embeddings)
        k = min(check_integer(k, "k"), len(self))
        if self.normalize:
            queries = l2_normalize(queries)
        if self._faiss_index is None:
            return exact_top_k(queries, self.embeddings, k, self.batch_size)
        scores, indices = self._faiss_index.search(np.ascontiguousarray(queries), k)
        return scores.astype(np.float32), indices.astype(np.int64)

    def save(self, path):
        """Writes the index to one `.npz` file, atomically (a crash leaves the old file).

        The faiss structures are rebuilt on `load`, not stored.
        """
        arrays = {"embeddings": self.embeddings}
        for name in ("ids", "texts", "labels"):
            values = getattr(self, name)
            if values is not None:
                arrays[name] = _column_array(values, name)
        config = {
            "format_version": _FORMAT_VERSION,
            "normalize": bool(self.normalize),
            "backend": self.backend,
            "nlist": int(self.nlist),
            "nprobe": int(self.nprobe),
        }
        arrays["config"] = np.array(json.dumps(config))
        with atomic_file_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path, backend=None):
        """Reads an index written by `save`; `backend` overrides the saved one.

        Example:
        >>> EmbeddingIndex.load("index.npz").search(queries, k=5)  # doctest: +SKIP
        """
        with reading(path, _INDEX_FILE):
            check_zip_archive(path)
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        if "config" not in arrays or "embeddings" not in arrays:
            raise UnreadableFileError(path, _INDEX_FILE, "it has no embeddings and config arrays")
        config = json.loads(str(arrays["config"]))
        if config.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"{path} is not a keras_siamese index of format {_FORMAT_VERSION}.")
        columns = {name: arrays[name].tolist() if name in arrays else None for name in ("ids", "texts", "labels")}
        index = cls(
            arrays["embeddings"],
            **columns,
            normalize=False,  # stored already normalised; re-normalising would move the last bits
            backend=backend or config["backend"],
            nlist=config["nlist"],
            nprobe=config["nprobe"],
        )
        index.normalize = config["normalize"]  # queries are normalised as before
        return index

    def _build_faiss(self):
        import faiss

        if self.backend == "faiss":
            index = faiss.IndexFlatIP(self.dimension)
        else:
            if not 1 <= self.nlist <= len(self):
                raise ValueError(f"nlist must be in [1, {len(self)}] (the index size), got {self.nlist}.")
            index = faiss.IndexIVFFlat(
                faiss.IndexFlatIP(self.dimension), self.dimension, self.nlist, faiss.METRIC_INNER_PRODUCT
            )
            index.train(self.embeddings)
            index.nprobe = self.nprobe
        index.add(self.embeddings)
        return index


def _default_nlist(size):
    return max(1, min(int(4 * math.sqrt(size)), size // 39))


def _check_column(values, name, size):
    """`values` as a list of `size` items, or None."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{name} must be a sequence, not a single string.")
    values = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if len(values) != size:
        raise ValueError(f"{name} has {len(values)} items for {size} embeddings.")
    return values


def _column_array(values, name):
    """`values` as a numpy array that `np.load(allow_pickle=False)` reads back unchanged."""
    array = np.array(values)
    if array.dtype.kind not in "iufUS" or array.ndim != 1 or array.tolist() != values:
        raise ValueError(f"To save, {name} must be all strings or all numbers.")
    return array
