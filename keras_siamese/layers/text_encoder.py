"""Strings in, token features out: tokenisation inside the graph, then a keras-hub backbone."""

import base64

import keras
import tensorflow as tf
from keras_hub.layers import StartEndPacker


@keras.saving.register_keras_serializable(package="keras_siamese")
class TextEncoder(keras.layers.Layer):
    """Encodes raw strings with a keras-hub text backbone.

    Tokenises inside the graph (so a SavedModel takes plain strings), packs
    each text as `[CLS] tokens [SEP]`, truncating to `sequence_length`, pads,
    and runs the backbone. Empty strings encode as `[CLS] [SEP]`; texts that
    are not valid UTF-8 are tokenised with the invalid bytes replaced.

    The output is a dict:
    - `"sequence_output"`: float `[batch, sequence_length, hidden_dim]`,
    - `"pooled_output"`: float `[batch, hidden_dim]` (the backbone's pooler),
    - `"padding_mask"`: bool `[batch, sequence_length]`.
    Feed it to `keras_siamese.layers.Pooling` to get one vector per text.

    Setting `trainable=False` freezes the backbone (the "frozen encoder"
    baseline); the tokenizer has no weights.

    Args:
        backbone: a keras-hub backbone taking `token_ids`, `segment_ids` and
            `padding_mask` (ALBERT, BERT) and returning `sequence_output` and
            `pooled_output`.
        tokenizer: the keras-hub tokenizer matching the backbone; it must
            define `cls_token_id`, `sep_token_id` and `pad_token_id`.
        sequence_length: tokens per text after packing, `[CLS]` and `[SEP]`
            included. Longer texts are truncated.

    Example:
    >>> encoder = AlbertEncoder.from_corpus(corpus_texts)  # doctest: +SKIP
    >>> features = encoder(tf.constant(["a dog barked", ""]))  # doctest: +SKIP
    >>> features["pooled_output"].shape  # doctest: +SKIP
    TensorShape([2, 128])
    """

    def __init__(self, backbone, tokenizer, sequence_length=128, **kwargs):
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
        self.packer = StartEndPacker(
            sequence_length=sequence_length,
            start_value=tokenizer.cls_token_id,
            end_value=tokenizer.sep_token_id,
            pad_value=tokenizer.pad_token_id,
            return_padding_mask=True,
            dtype="int32",
        )

    @property
    def hidden_dim(self):
        return self.backbone.hidden_dim

    def build(self, input_shape):
        # keras-hub backbones are functional models, built when constructed.
        self.built = True

    def tokenize(self, texts):
        """Token ids and padding mask, `[batch, sequence_length]` each."""
        texts = tf.convert_to_tensor(texts)
        if texts.dtype != tf.string:
            raise ValueError(
                f"TextEncoder takes strings (tf.string), got dtype {texts.dtype.name}."
            )
        texts = tf.reshape(texts, [-1])
        texts = tf.strings.unicode_transcode(
            texts, "UTF-8", "UTF-8", errors="replace"
        )
        return self.packer(self.tokenizer(texts))

    def call(self, texts):
        token_ids, padding_mask = self.tokenize(texts)
        outputs = self.backbone(
            {
                "token_ids": token_ids,
                "segment_ids": tf.zeros_like(token_ids),
                "padding_mask": padding_mask,
            }
        )
        return {
            "sequence_output": outputs["sequence_output"],
            "pooled_output": outputs["pooled_output"],
            "padding_mask": tf.cast(padding_mask, "bool"),
        }

    def compute_output_spec(self, texts):
        batch = texts.shape[0]
        length, hidden = self.sequence_length, self.hidden_dim
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
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        config["tokenizer"] = keras.layers.deserialize(config["tokenizer"])
        return cls(**config)


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
