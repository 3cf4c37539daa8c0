"""Keras model subclasses that own their training loss."""

from keras_siamese.models.triplet_semihard import TripletSemiHard

__all__ = ["TripletSemiHard"]
