"""One vector per text from an encoder's features."""

import collections.abc

import keras
from keras import ops

POOLING_MODES = ("pooled", "cls", "mean", "max", "mean_sqrt_len")


@keras.saving.register_keras_serializable(package="keras_siamese")
class Pooling(keras.layers.Layer):
    """Reduces `TextEncoder` features to one vector per text.

    Modes:
    - `"pooled"`: the backbone's pooled output (tanh-Dense over `[CLS]`), the
      Siamese ALBERT study's choice;
    - `"cls"`: the final hidden state of `[CLS]`;
    - `"mean"`: mean of the token states under the padding mask
      (sentence-transformers' default);
    - `"max"`: element-wise max over the non-padding tokens;
    - `"mean_sqrt_len"`: sum of token states divided by sqrt(number of tokens).
    Maths runs in float32 and the output is float32 whatever the dtype policy:
    under mixed precision (`keras_siamese.precision`) the encoder computes in
    bfloat16 or float16 and everything from the pooling on in float32.

    Args:
        mode: one of the modes above.

    Example:
    >>> features = {"sequence_output": tf.ones([2, 4, 8]),
    ...             "pooled_output": tf.zeros([2, 8]),
    ...             "padding_mask": tf.constant([[True, True, False, False], [True] * 4])}
    >>> Pooling("mean")(features).shape
    TensorShape([2, 8])
    """

    def __init__(self, mode="pooled", **kwargs):
        super().__init__(**kwargs)
        self.autocast = False  # float32 maths: the encoder's features are widened, never narrowed
        if mode not in POOLING_MODES:
            raise ValueError(
                f"Unknown pooling mode {mode!r}; expected one of {POOLING_MODES}."
            )
        self.mode = mode

    def call(self, features):
        self._check_features(features)
        if self.mode == "pooled":
            return ops.cast(features["pooled_output"], "float32")
        sequence = ops.cast(features["sequence_output"], "float32")
        if self.mode == "cls":
            return sequence[:, 0, :]
        mask = ops.cast(features["padding_mask"], "float32")[:, :, None]
        if self.mode == "max":
            # [CLS] and [SEP] are never padding, so every row has a real token.
            pooled = ops.max(ops.where(mask > 0, sequence, -1e9), axis=1)
        else:
            counts = ops.maximum(ops.sum(mask, axis=1), 1.0)
            if self.mode == "mean_sqrt_len":
                counts = ops.sqrt(counts)
            pooled = ops.sum(sequence * mask, axis=1) / counts
        return pooled

    def _check_features(self, features):
        """Raises `ValueError` unless `features` is a dict holding what this mode reads."""
        needed = {"pooled": ["pooled_output"], "cls": ["sequence_output"]}.get(
            self.mode, ["sequence_output", "padding_mask"]
        )
        is_dict = isinstance(features, collections.abc.Mapping)
        if not is_dict or any(name not in features for name in needed):
            given = sorted(features) if is_dict else type(features).__name__
            raise ValueError(
                f"Pooling({self.mode!r}) takes the encoder's features, a dict with {needed}; got {given}."
            )
        shape = features[needed[0]].shape
        rank = None if getattr(shape, "rank", 0) is None else len(shape)  # None: unknown rank
        if needed[0] == "sequence_output" and rank not in (None, 3):
            raise ValueError(f"sequence_output must be [batch, length, hidden], got shape {tuple(shape)}.")

    def compute_output_shape(self, features_shape):
        if self.mode == "pooled":
            return tuple(features_shape["pooled_output"])
        batch, _, hidden = features_shape["sequence_output"]
        return (batch, hidden)

    def compute_output_spec(self, *args, **kwargs):
        return keras.KerasTensor(super().compute_output_spec(*args, **kwargs).shape, "float32")

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config
