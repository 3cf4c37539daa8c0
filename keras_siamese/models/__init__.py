"""Keras models for metric learning: the semi-hard triplet model and the siamese pair model."""

from keras_siamese.models.pairs import pair_model
from keras_siamese.models.triplet_semihard import TripletSemiHard

__all__ = ["TripletSemiHard", "pair_model"]
