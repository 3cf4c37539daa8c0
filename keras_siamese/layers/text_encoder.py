"""A keras-hub text backbone as a Keras layer: tokens in (or raw strings), token features out."""

import json
import os

import keras
import keras_hub
import tensorflow as tf

from keras_siamese.layers.encoder import Encoder
from keras_siamese.layers.freezing import freeze_backbone
from keras_siamese.layers.fusion import fuse
from keras_siamese.layers.preprocessor import PADDING_MASK, TOKEN_IDS, TextPreprocessor


@keras.saving.register_keras_serializable(package="keras_siamese")
class TextEncoder(Encoder):
    """Runs a keras-hub text backbone on token ids, or on raw strings through its preprocessor.

    Called on the `{"token_ids", "padding_mask"}` dict that its `preprocessor`
    (a `TextPreprocessor`) makes, it runs only the backbone: the token-level
    model that trains fast and compiles (`SentenceEmbedder.from_encoder`
    builds that one and maps the preprocessor over the data pipeline). Called
    on a `[batch]` string tensor, it runs the preprocessor first, inside the
    graph, so a strings-in functional model works as a drop-in layer too.

    The output is the `keras_siamese.layers.Encoder` dict (`sequence_output`,
    `pooled_output`: the backbone's pooler, or the `[CLS]` state for a
    backbone without one, `padding_mask`). Feed it to
    `keras_siamese.layers.Pooling` to get one vector per text.
    Padding sits at the end and is masked, so the kept positions do not depend
    on how much padding a batch carries.

    The backbone's dense and layer-norm layers compute in the forms
    TensorFlow's oneDNN fusions take (`keras_siamese.layers.fusion`; same
    weights and numbers, faster on CPUs; `set_fused_graph(False)` turns it off).

    Setting `trainable=False` freezes the whole encoder (the "frozen encoder"
    baseline); `frozen_layers` freezes part of the backbone and is kept in
    the config.

    Args:
        backbone: a keras-hub text backbone taking `token_ids` and
            `padding_mask` (and `segment_ids` if it has them: ALBERT, BERT)
            and returning `sequence_output` (and `pooled_output` if it has a
            pooler).
        tokenizer: the keras-hub tokenizer matching the backbone.
        sequence_length, dynamic_length, length_buckets: as in
            `TextPreprocessor`.
        frozen_layers: `None` (nothing frozen here), `"all"` (the backbone),
            or an integer `n`: the embeddings and the lowest `n` transformer
            layers (see `keras_siamese.layers.freezing.freeze_backbone`).
        pooler_trainable: `False` freezes the backbone's pooler (the Dense
            behind `pooled_output`), for models that pool the token states
            instead and so never train it.

    Example:
    >>> encoder = TextEncoder.from_preset("bert_tiny_en_uncased")  # doctest: +SKIP
    >>> tokens = encoder.preprocessor(["a dog barked", ""])  # doctest: +SKIP
    >>> encoder(tokens)["sequence_output"].shape  # doctest: +SKIP
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
        max_length = getattr(backbone, "max_sequence_length", None)
        if max_length is not None and sequence_length > max_length:
            raise ValueError(
                f"sequence_length={sequence_length} exceeds the backbone's "
                f"max_sequence_length={max_length}."
            )
        self.backbone = fuse(backbone)
        self.preprocessor = TextPreprocessor(
            tokenizer, sequence_length, dynamic_length, length_buckets, name=f"{self.name}_preprocessor"
        )
        self.frozen_layers = frozen_layers
        if frozen_layers is not None:
            freeze_backbone(backbone, frozen_layers)
        self.pooler_trainable = pooler_trainable

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
        tokenizer = keras_hub.models.Tokenizer.from_preset(preset, **_hf_bert_tokenizer_arguments(preset))
        return cls(backbone, tokenizer, sequence_length=sequence_length, **kwargs)

    @property
    def tokenizer(self):
        return self.preprocessor.tokenizer

    @property
    def hidden_dim(self):
        return self.backbone.hidden_dim

    @property
    def features_dtype(self):
        return self.backbone.compute_dtype

    @property
    def has_pooler(self):
        return getattr(self.backbone, "pooled_dense", None) is not None

    @property
    def pooler_trainable(self):
        """Whether the backbone's pooler trains (always `False` for a backbone without one)."""
        return self.has_pooler and self.backbone.pooled_dense.trainable

    @pooler_trainable.setter
    def pooler_trainable(self, trainable):
        if self.has_pooler:
            self.backbone.pooled_dense.trainable = bool(trainable) and self.backbone.trainable

    def encode_tokens(self, token_ids, padding_mask, training):
        backbone_inputs = {TOKEN_IDS: token_ids, PADDING_MASK: padding_mask}
        if "segment_ids" in self.backbone.input:
            backbone_inputs["segment_ids"] = tf.zeros_like(token_ids)
        outputs = self.backbone(backbone_inputs, training=training)
        if not isinstance(outputs, dict):  # backbones without a pooler return the sequence only
            return outputs, outputs[:, 0, :]
        sequence_output = outputs["sequence_output"]
        return sequence_output, outputs.get("pooled_output", sequence_output[:, 0, :])

    def get_config(self):
        config = super().get_config()
        preprocessor = self.preprocessor.get_config()
        config.update(
            {
                "backbone": keras.layers.serialize(self.backbone),
                "tokenizer": preprocessor["tokenizer"],
                "sequence_length": preprocessor["sequence_length"],
                "dynamic_length": preprocessor["dynamic_length"],
                "length_buckets": preprocessor["length_buckets"],
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


def _hf_bert_tokenizer_arguments(preset):
    """Works around keras-hub reading a Hugging Face BERT tokenizer without the accent stripping its
    `tokenizer_config.json` asks for: keras_hub/src/utils/transformers/convert_bert.py's
    `convert_tokenizer` passes only `lowercase`, so an uncased model (MiniLM) turns "Ünïcödé café"
    into [UNK] tokens where transformers reads "unicode cafe". Returns the `strip_accents` transformers
    applies (None in the file: strip when lowercasing). Should keras-hub pass it itself one day, the
    second value is a TypeError: this override then goes.
    """
    directory = os.fspath(preset)
    config_path = os.path.join(directory, "tokenizer_config.json")
    if not (os.path.isfile(config_path) and os.path.isfile(os.path.join(directory, "vocab.txt"))):
        return {}
    with open(config_path, encoding="utf-8") as file:
        config = json.load(file)
    if config.get("tokenizer_class", "BertTokenizer") not in ("BertTokenizer", "BertTokenizerFast"):
        return {}
    strip = config.get("strip_accents")
    return {"strip_accents": bool(config.get("do_lower_case", True)) if strip is None else bool(strip)}
