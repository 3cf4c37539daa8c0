"""Retrieval, classification and pair-similarity (STS) quality of embeddings, and Keras callbacks that
track retrieval and the best epoch."""

from keras_siamese.evaluation.best_epoch import BestEpoch
from keras_siamese.evaluation.callbacks import RetrievalEvaluation
from keras_siamese.evaluation.classification import (
    classification_report,
    knn_classify,
    knn_scores,
    roc_auc,
)
from keras_siamese.evaluation.correlation import (
    pair_similarity_correlation,
    pearson_correlation,
    spearman_correlation,
)
from keras_siamese.evaluation.retrieval import retrieval_metrics

__all__ = [
    "BestEpoch",
    "RetrievalEvaluation",
    "classification_report",
    "knn_classify",
    "knn_scores",
    "pair_similarity_correlation",
    "pearson_correlation",
    "retrieval_metrics",
    "roc_auc",
    "spearman_correlation",
]
