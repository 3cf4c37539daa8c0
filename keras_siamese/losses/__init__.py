"""Metric-learning losses: triplet (semi-hard, batch-hard, batch-all), contrastive,
multiple-negatives ranking, cosine-similarity regression, CoSENT, and Matryoshka training of any of them."""

from keras_siamese.losses.distances import pairwise_distance
from keras_siamese.losses.matryoshka import MatryoshkaLoss, truncate_embeddings
from keras_siamese.losses.pairwise import (
    ContrastiveLoss,
    OnlineContrastiveLoss,
    contrastive_loss,
    online_contrastive_loss,
)
from keras_siamese.losses.ranking import MultipleNegativesRankingLoss, multiple_negatives_ranking_loss
from keras_siamese.losses.regression import CoSENTLoss, CosineSimilarityLoss, cosent_loss, cosine_similarity_loss
from keras_siamese.losses.triplet import (
    SemihardTripletTerms,
    TripletBatchAllLoss,
    TripletBatchHardLoss,
    TripletSemiHardLoss,
    semihard_triplet_terms,
    triplet_batch_all_loss,
    triplet_batch_hard_loss,
    triplet_semihard_loss,
)

__all__ = [
    "CoSENTLoss",
    "ContrastiveLoss",
    "CosineSimilarityLoss",
    "MatryoshkaLoss",
    "MultipleNegativesRankingLoss",
    "OnlineContrastiveLoss",
    "SemihardTripletTerms",
    "TripletBatchAllLoss",
    "TripletBatchHardLoss",
    "TripletSemiHardLoss",
    "contrastive_loss",
    "cosent_loss",
    "cosine_similarity_loss",
    "multiple_negatives_ranking_loss",
    "online_contrastive_loss",
    "pairwise_distance",
    "semihard_triplet_terms",
    "triplet_batch_all_loss",
    "triplet_batch_hard_loss",
    "triplet_semihard_loss",
    "truncate_embeddings",
]
