"""Keras models for sentence embeddings: `SentenceEmbedder` (texts in, any loss), `TripletSemiHard`
(its semi-hard triplet default), the siamese `pair_model`, and `load_model` for the files they save."""

import keras_siamese.optimizers  # noqa: F401  registers LazyAdam, which a saved model's optimizer may be
from keras_siamese.models.loading import load_model
from keras_siamese.models.pairs import pair_model
from keras_siamese.models.sentence_embedder import SentenceEmbedder
from keras_siamese.models.triplet_semihard import TripletSemiHard

__all__ = ["SentenceEmbedder", "TripletSemiHard", "load_model", "pair_model"]
