"""Retrieval (label-based and information-retrieval), classification, duplicate-detection and
pair-similarity (STS) quality of embeddings, and Keras callbacks that track retrieval and the best epoch."""

from keras_siamese.evaluation.best_epoch import BestEpoch
from keras_siamese.evaluation.callbacks import (
    InformationRetrievalEvaluation,
    PairSimilarityEvaluation,
    RetrievalEvaluation,
)
from keras_siamese.evaluation.classification import (
    classification_report,
    knn_classify,
    knn_scores,
    roc_auc,
)
from keras_siamese.evaluation.correlation import (
    embedding_correlation,
    pair_cosines,
    pair_similarity_correlation,
    pearson_correlation,
    spearman_correlation,
)
from keras_siamese.evaluation.information_retrieval import information_retrieval_metrics
from keras_siamese.evaluation.pair_classification import BestF1Threshold, best_f1_threshold
from keras_siamese.evaluation.retrieval import retrieval_metrics

__all__ = [
    "BestEpoch",
    "BestF1Threshold",
    "InformationRetrievalEvaluation",
    "PairSimilarityEvaluation",
    "RetrievalEvaluation",
    "best_f1_threshold",
    "classification_report",
    "embedding_correlation",
    "information_retrieval_metrics",
    "knn_classify",
    "knn_scores",
    "pair_cosines",
    "pair_similarity_correlation",
    "pearson_correlation",
    "retrieval_metrics",
    "roc_auc",
    "spearman_correlation",
]
