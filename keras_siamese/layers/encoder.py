"""`Encoder`: what every encoder layer provides, so that pooling, the models, the data pipeline and
the export treat a keras-hub backbone and a TF Hub SavedModel alike."""

import keras

from keras_siamese.layers.preprocessor import PADDING_MASK, TOKEN_IDS


class Encoder(keras.layers.Layer):
    """The encoder contract: tokens (or raw strings) in, token features out.

    An encoder has
    - `preprocessor`: a `keras_siamese.layers.Preprocessor` mapping texts to
      the `{"token_ids", "padding_mask"}` int32 `[batch, length]` dict it takes;
    - `hidden_dim` and `sequence_length` (its preprocessor's);
    - `has_pooler` (a trained pooler behind `pooled_output`) and
      `pooler_trainable` (settable; `False` for an encoder without a pooler);
    and, called on the tokens (or on a `[batch]` string tensor, through its
    preprocessor inside the graph), returns a dict:
    - `"sequence_output"`: float `[batch, length, hidden_dim]`,
    - `"pooled_output"`: float `[batch, hidden_dim]` (the pooler's output, or the
      `[CLS]` state where there is no pooler),
    - `"padding_mask"`: bool `[batch, length]`.
    Subclasses implement `encode_tokens(token_ids, padding_mask, training)`
    returning `(sequence_output, pooled_output)`, and set `preprocessor`.

    Example:
    >>> encoder = TextEncoder.from_preset("bert_tiny_en_uncased")  # doctest: +SKIP
    >>> isinstance(encoder, Encoder), encoder.hidden_dim  # doctest: +SKIP
    (True, 128)
    """

    has_pooler = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_jit = False  # strings go through string ops, which XLA cannot compile

    @property
    def hidden_dim(self):
        raise NotImplementedError

    @property
    def sequence_length(self):
        return self.preprocessor.sequence_length

    @property
    def features_dtype(self):
        """The dtype of `sequence_output` and `pooled_output`."""
        return self.compute_dtype

    @property
    def pooler_trainable(self):
        """Whether the pooler trains (always `False` for an encoder without one)."""
        return False

    @pooler_trainable.setter
    def pooler_trainable(self, trainable):
        del trainable  # nothing to freeze

    def build(self, input_shape):
        self.built = True  # what an encoder wraps is built when the encoder is constructed

    def call(self, inputs, training=None):
        tokens = inputs if isinstance(inputs, dict) else self.preprocessor(inputs)
        token_ids, padding_mask = tokens[TOKEN_IDS], tokens[PADDING_MASK]
        sequence_output, pooled_output = self.encode_tokens(token_ids, padding_mask, training)
        return {
            "sequence_output": sequence_output,
            "pooled_output": pooled_output,
            "padding_mask": keras.ops.cast(padding_mask, "bool"),
        }

    def encode_tokens(self, token_ids, padding_mask, training):
        raise NotImplementedError

    def compute_output_spec(self, inputs, training=None):
        if isinstance(inputs, dict):
            batch, length = inputs[TOKEN_IDS].shape
        else:
            batch = inputs.shape[0]
            length = None if self.preprocessor.dynamic_length else self.preprocessor.sequence_length
        dtype = self.features_dtype
        return {
            "sequence_output": keras.KerasTensor((batch, length, self.hidden_dim), dtype),
            "pooled_output": keras.KerasTensor((batch, self.hidden_dim), dtype),
            "padding_mask": keras.KerasTensor((batch, length), "bool"),
        }
