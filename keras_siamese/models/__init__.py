"""Keras models for metric learning: texts in at the edges (TextTask), the semi-hard triplet model
and the siamese pair model."""

from keras_siamese.models.pairs import pair_model
from keras_siamese.models.text_task import TextTask
from keras_siamese.models.triplet_semihard import TripletSemiHard

__all__ = ["TextTask", "TripletSemiHard", "pair_model"]
