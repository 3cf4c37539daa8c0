"""Nearest-neighbour search over embeddings: exact (TensorFlow) or faiss, and a text-level wrapper."""

from keras_siamese.search.exact import exact_top_k, l2_normalize
from keras_siamese.search.index import BACKENDS, EmbeddingIndex, faiss_available
from keras_siamese.search.semantic_search import SearchHit, SemanticSearch

__all__ = [
    "BACKENDS",
    "EmbeddingIndex",
    "SearchHit",
    "SemanticSearch",
    "exact_top_k",
    "faiss_available",
    "l2_normalize",
]
