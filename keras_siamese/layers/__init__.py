"""Drop-in Keras layers: the text preprocessor, encoders, pooling, projection head, L2 normalisation."""

from keras_siamese.layers.albert_encoder import AlbertEncoder, train_sentencepiece
from keras_siamese.layers.encoder import Encoder
from keras_siamese.layers.normalization import L2Normalize
from keras_siamese.layers.pooling import Pooling
from keras_siamese.layers.preprocessor import TextPreprocessor, token_inputs
from keras_siamese.layers.projection import Projection
from keras_siamese.layers.text_encoder import TextEncoder

__all__ = [
    "AlbertEncoder",
    "Encoder",
    "L2Normalize",
    "Pooling",
    "Projection",
    "TextEncoder",
    "TextPreprocessor",
    "token_inputs",
    "train_sentencepiece",
]
