"""Keras models for sentence embeddings: `SentenceEmbedder` (texts in, any loss), `TripletSemiHard`
(its semi-hard triplet default), the siamese `pair_model`, and `load_model` for the files they save."""

import keras_siamese.optimizers  # noqa: F401  registers LazyAdam, which a saved model's optimizer may be
from keras_siamese.models.loading import load_model
from keras_siamese.models.pairs import pair_model
from keras_siamese.models.sentence_embedder import SentenceEmbedder
from keras_siamese.models.triplet_semihard import TripletSemiHard

__all__ = ["SentenceEmbedder", "TripletSemiHard", "load_model", "pair_model"]


def __getattr__(name):
    if name == "TextTask":  # 0.1.0's name, kept for one release
        import warnings

        warnings.warn("keras_siamese.models.TextTask is renamed SentenceEmbedder; the old name goes in the next "
                      "release.", DeprecationWarning, stacklevel=2)
        return SentenceEmbedder
    raise AttributeError(f"module 'keras_siamese.models' has no attribute {name!r}")
