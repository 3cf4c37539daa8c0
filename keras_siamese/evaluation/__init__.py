"""Retrieval and classification quality of embeddings, and a Keras callback that tracks it."""

from keras_siamese.evaluation.callbacks import RetrievalEvaluation
from keras_siamese.evaluation.classification import (
    classification_report,
    knn_classify,
    knn_scores,
    roc_auc,
)
from keras_siamese.evaluation.retrieval import retrieval_metrics

__all__ = [
    "RetrievalEvaluation",
    "classification_report",
    "knn_classify",
    "knn_scores",
    "retrieval_metrics",
    "roc_auc",
]
