"""Keras models for metric learning: texts in at the edges (TextTask), the semi-hard triplet model,
the siamese pair model, and `load_model` for the files they save."""

import keras_siamese.optimizers  # noqa: F401  registers LazyAdam, which a saved model's optimizer may be
from keras_siamese.models.loading import load_model
from keras_siamese.models.pairs import pair_model
from keras_siamese.models.text_task import TextTask
from keras_siamese.models.triplet_semihard import TripletSemiHard

__all__ = ["TextTask", "TripletSemiHard", "load_model", "pair_model"]
