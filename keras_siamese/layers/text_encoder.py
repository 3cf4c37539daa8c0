"""Strings in, token features out: tokenisation inside the graph, then a keras-hub backbone."""

import base64

import keras
import keras_hub
import tensorflow as tf
from keras_hub.layers import StartEndPacker

from keras_siamese.layers.dynamic_length import check_length_buckets, trim_to_bucket
from keras_siamese.layers.freezing import freeze_backbone


@keras.saving.register_keras_serializable(package="keras_siamese")
class TextEncoder(keras.layers.Layer):
    """Encodes raw strings with a keras-hub text backbone.

    Tokenises inside the graph (so a SavedModel takes plain strings), packs
    each text as `[CLS] tokens [SEP]`, truncating to `sequence_length`, pads,
    and runs the backbone. Empty strings encode as `[CLS] [SEP]`; texts that
    are not valid UTF-8 are tokenised with the invalid bytes replaced.

    With `dynamic_length=True` (the default) each batch is cut to its longest
    text rounded up to the next of `length_buckets`, inside the graph: short
    texts stop paying for `sequence_length` in `fit`, `predict` and an
    exported SavedModel alike, and the outputs of the kept positions equal
    those of full padding (padding is masked and sits at the end).

    The output is a dict:
    - `"sequence_output"`: float `[batch, length, hidden_dim]`,
    - `"pooled_output"`: float `[batch, hidden_dim]` (the backbone's pooler),
    - `"padding_mask"`: bool `[batch, length]`,
    where `length` is `sequence_length`, or the batch's bucket length when
    `dynamic_length`. Feed it to `keras_siamese.layers.Pooling` to get one
    vector per text.

    Setting `trainable=False` freezes the whole encoder (the "frozen encoder"
    baseline); `frozen_layers` freezes part of the backbone and is kept in
    the config. The tokenizer has no weights.

    Args:
        backbone: a keras-hub text backbone taking `token_ids` and
            `padding_mask` (and `segment_ids` if it has them: ALBERT, BERT)
            and returning `sequence_output` (and `pooled_output` if it has a
            pooler; otherwise the `[CLS]` state is returned there).
        tokenizer: the keras-hub tokenizer matching the backbone; it must
            define `cls_token_id`/`sep_token_id` (or `start_token_id`/
            `end_token_id`) and `pad_token_id`.
        sequence_length: the most tokens per text, `[CLS]` and `[SEP]`
            included. Longer texts are truncated.
        dynamic_length: trim each batch to its bucketed longest text.
        length_buckets: the lengths a batch may be trimmed to; `None` gives
            `default_length_buckets(sequence_length)` (multiples of 4 up to 64,
            of 16 up to 128, then of 32). `sequence_length` is always one.
        frozen_layers: `None` (nothing frozen here), `"all"` (the backbone),
            or an integer `n`: the embeddings and the lowest `n` transformer
            layers (see `keras_siamese.layers.freezing.freeze_backbone`).
        pooler_trainable: `False` freezes the backbone's pooler (the Dense
            behind `pooled_output`), for models that pool the token states
            instead and so never train it.

    Example:
    >>> encoder = TextEncoder.from_preset("bert_tiny_en_uncased")  # doctest: +SKIP
    >>> features = encoder(tf.constant(["a dog barked", ""]))  # doctest: +SKIP
    >>> features["sequence_output"].shape  # doctest: +SKIP
    TensorShape([2, 8, 128])
    """

    def __init__(
        self,
        backbone,
        tokenizer,
        sequence_length=128,
        dynamic_length=True,
        length_buckets=None,
        frozen_layers=None,
        pooler_trainable=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if sequence_length < 3:
            raise ValueError(
                "sequence_length must leave room for [CLS], [SEP] and at least "
                f"one token, got {sequence_length}."
            )
        max_length = getattr(backbone, "max_sequence_length", None)
        if max_length is not None and sequence_length > max_length:
            raise ValueError(
                f"sequence_length={sequence_length} exceeds the backbone's "
                f"max_sequence_length={max_length}."
            )
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.sequence_length = sequence_length
        self.dynamic_length = dynamic_length
        self.length_buckets = length_buckets
        self.frozen_layers = frozen_layers
        self._buckets = check_length_buckets(length_buckets, sequence_length)
        self.packer = StartEndPacker(
            sequence_length=sequence_length,
            start_value=_special_token_id(tokenizer, "cls_token_id", "start_token_id"),
            end_value=_special_token_id(tokenizer, "sep_token_id", "end_token_id"),
            pad_value=_special_token_id(tokenizer, "pad_token_id"),
            return_padding_mask=True,
            dtype="int32",
        )
        if frozen_layers is not None:
            freeze_backbone(backbone, frozen_layers)
        self.pooler_trainable = pooler_trainable
        # Tokenisation works on strings, which XLA cannot compile.
        self.supports_jit = False

    @classmethod
    def from_preset(cls, preset, sequence_length=128, **kwargs):
        """Backbone and tokenizer from a keras-hub preset name or a local directory.

        Local directories may be keras-hub presets or Hugging Face checkpoints
        of a model keras-hub converts (config.json, model.safetensors and the
        tokenizer files): BERT (MiniLM), ALBERT, RoBERTa, DistilBERT, ...
        Other arguments go to the constructor.

        Example:
        >>> encoder = TextEncoder.from_preset("path/to/all-MiniLM-L6-v2")  # doctest: +SKIP
        """
        backbone = keras_hub.models.Backbone.from_preset(preset)
        tokenizer = keras_hub.models.Tokenizer.from_preset(preset)
        return cls(backbone, tokenizer, sequence_length=sequence_length, **kwargs)

    @property
    def hidden_dim(self):
        return self.backbone.hidden_dim

    @property
    def pooler_trainable(self):
        """Whether the backbone's pooler trains (always `False` for a backbone without one)."""
        pooler = getattr(self.backbone, "pooled_dense", None)
        return pooler is not None and pooler.trainable

    @pooler_trainable.setter
    def pooler_trainable(self, trainable):
        pooler = getattr(self.backbone, "pooled_dense", None)
        if pooler is not None:
            pooler.trainable = bool(trainable) and self.backbone.trainable

    def build(self, input_shape):
        # keras-hub backbones are functional models, built when constructed.
        self.built = True

    def tokenize(self, texts):
        """Token ids and padding mask, `[batch, length]` each (trimmed if `dynamic_length`)."""
        texts = as_text_batch(texts, type(self).__name__)
        token_ids, padding_mask = self.packer(self.tokenizer(texts))
        if self.dynamic_length:
            padding_mask, token_ids = trim_to_bucket(padding_mask, self._buckets, token_ids)
        return token_ids, padding_mask

    def call(self, texts, training=None):
        token_ids, padding_mask = self.tokenize(texts)
        return self.encode_tokens(token_ids, padding_mask, training=training)

    def encode_tokens(self, token_ids, padding_mask, training=None):
        """The backbone's features for packed `[batch, length]` token ids and padding mask.

        The second half of `call` (after `tokenize`): no string ops, so an
        exported token signature runs without TF Text. Padding at the end
        does not change the features of the kept positions.

        Example:
        >>> token_ids, padding_mask = encoder.tokenize(["a dog"])  # doctest: +SKIP
        >>> encoder.encode_tokens(token_ids, padding_mask)["pooled_output"]  # doctest: +SKIP
        """
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        if "segment_ids" in self.backbone.input:
            inputs["segment_ids"] = tf.zeros_like(token_ids)
        outputs = self.backbone(inputs, training=training)
        if isinstance(outputs, dict):
            sequence_output = outputs["sequence_output"]
            pooled_output = outputs.get("pooled_output", sequence_output[:, 0, :])
        else:  # backbones without a pooler return the sequence only
            sequence_output, pooled_output = outputs, outputs[:, 0, :]
        return {
            "sequence_output": sequence_output,
            "pooled_output": pooled_output,
            "padding_mask": tf.cast(padding_mask, "bool"),
        }

    def compute_output_spec(self, texts, training=None):
        batch = texts.shape[0]
        length = None if self.dynamic_length else self.sequence_length
        hidden = self.hidden_dim
        dtype = self.backbone.compute_dtype
        return {
            "sequence_output": keras.KerasTensor((batch, length, hidden), dtype),
            "pooled_output": keras.KerasTensor((batch, hidden), dtype),
            "padding_mask": keras.KerasTensor((batch, length), "bool"),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.layers.serialize(self.backbone),
                "tokenizer": _serialize_with_vocabulary(self.tokenizer),
                "sequence_length": self.sequence_length,
                "dynamic_length": self.dynamic_length,
                "length_buckets": self.length_buckets,
                "frozen_layers": self.frozen_layers,
                "pooler_trainable": self.pooler_trainable,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        config["tokenizer"] = keras.layers.deserialize(config["tokenizer"])
        return cls(**config)


def as_text_batch(texts, layer_name):
    """`texts` as a flat tf.string batch with invalid UTF-8 bytes replaced."""
    texts = tf.convert_to_tensor(texts)
    if texts.dtype != tf.string:
        raise ValueError(f"{layer_name} takes strings (tf.string), got dtype {texts.dtype.name}.")
    texts = tf.reshape(texts, [-1])
    return tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace")


def _special_token_id(tokenizer, *names):
    for name in names:
        if getattr(tokenizer, name, None) is not None:
            return getattr(tokenizer, name)
    raise ValueError(
        f"{type(tokenizer).__name__} defines none of {names}; TextEncoder needs "
        "them to pack texts."
    )


def _serialize_with_vocabulary(tokenizer):
    """Serialises a keras-hub tokenizer with its vocabulary inside the config.

    keras-hub keeps vocabularies out of `get_config` (they travel as assets of
    a `.keras` file); embedding them makes `from_config` give a working layer.
    """
    serialized = keras.layers.serialize(tokenizer)
    if getattr(tokenizer, "proto", None) is not None:
        # SentencePiece: keras-hub reads a base64 string as the proto itself.
        serialized["config"]["proto"] = base64.b64encode(tokenizer.proto).decode("ascii")
    elif hasattr(tokenizer, "get_vocabulary"):
        serialized["config"]["vocabulary"] = tokenizer.get_vocabulary()
    return serialized
