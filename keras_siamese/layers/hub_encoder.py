"""A TF Hub-format text encoder SavedModel (BERT/ALBERT inputs and outputs) as a strings-in Keras layer."""

import os

import keras
import tensorflow as tf
from keras.src.saving import serialization_lib  # Keras' own safe-mode flag (as TFSMLayer)
from keras_hub.layers import StartEndPacker
from keras_hub.models import AlbertTokenizer, BertTokenizer

from keras_siamese.layers.dynamic_length import check_length_buckets, trim_to_bucket
from keras_siamese.layers.preprocessor import as_text_batch

ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
ENCODER_OUTPUTS = ("pooled_output", "sequence_output")


@keras.saving.register_keras_serializable(package="keras_siamese")
class HubEncoder(keras.layers.Layer):
    """Runs a TF Hub-format encoder SavedModel on raw strings.

    The encoder is any SavedModel following TF Hub's text-encoder interface
    (albert_en_base, bert_en_uncased_L-12_H-768_A-12, ...): called with a dict
    of int32 `input_word_ids`, `input_mask`, `input_type_ids` `[batch, length]`
    and `training`, it returns a dict with `pooled_output` and
    `sequence_output`. Texts are tokenised inside the graph, by the matching
    TF Hub preprocessor SavedModel (its `tokenize` and `bert_pack_inputs`) or,
    without one, by a keras-hub tokenizer built from the encoder's own
    `sp_model_file` (ALBERT) or `vocab_file` and `do_lower_case` (BERT).

    Local SavedModel directories load directly; TF Hub/Kaggle handles and
    URLs are resolved by `tensorflow_hub` (`pip install "keras-siamese[hub]"`).
    The encoder's variables are this layer's weights: trainable for
    fine-tuning unless `trainable=False`, saved by `model.save`, and exported
    with the model. Outputs follow `TextEncoder`'s
    contract (a dict of `sequence_output`, `pooled_output`, `padding_mask`),
    with the same dynamic length trimming, so `Pooling` works unchanged.

    Loading a `.keras` file holding a HubEncoder reloads the SavedModel from
    its handle, which Keras allows only with `safe_mode=False` (a SavedModel
    is graph code from outside the `.keras` file).

    Args:
        encoder: handle, URL or directory of the encoder SavedModel.
        preprocessor: handle, URL or directory of the matching preprocessor
            SavedModel, or `None` to tokenise with the encoder's assets.
        sequence_length: the most tokens per text, `[CLS]` and `[SEP]`
            included.
        dynamic_length: trim each batch to its bucketed longest text.
        length_buckets: as in `TextEncoder`.

    Example:
    >>> encoder = HubEncoder("https://tfhub.dev/tensorflow/albert_en_base/3",
    ...     "https://tfhub.dev/tensorflow/albert_en_preprocess/3")  # doctest: +SKIP
    >>> encoder(tf.constant(["a small dog"]))["pooled_output"].shape  # doctest: +SKIP
    TensorShape([1, 768])
    """

    def __init__(
        self,
        encoder,
        preprocessor=None,
        sequence_length=128,
        dynamic_length=True,
        length_buckets=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if sequence_length < 3:
            raise ValueError(
                "sequence_length must leave room for [CLS], [SEP] and at least "
                f"one token, got {sequence_length}."
            )
        self.encoder = encoder
        self.preprocessor_handle = preprocessor  # a SavedModel handle, not a preprocessor layer
        self.sequence_length = sequence_length
        self.dynamic_length = dynamic_length
        self.length_buckets = length_buckets
        self._buckets = check_length_buckets(length_buckets, sequence_length)
        self._encoder_model = _load_saved_model(encoder)
        if preprocessor is None:
            self._tokenizer = _tokenizer_from_assets(self._encoder_model, encoder)
            self._packer = StartEndPacker(
                sequence_length=sequence_length,
                start_value=self._tokenizer.cls_token_id,
                end_value=self._tokenizer.sep_token_id,
                pad_value=self._tokenizer.pad_token_id,
                return_padding_mask=True,
                dtype="int32",
            )
        else:
            self._preprocessor_model = _load_saved_model(preprocessor)
            _check_preprocessor(self._preprocessor_model, preprocessor)
        self.hidden_dim = _check_encoder(self._encoder_model, encoder)
        # Wrapping (not copying) the SavedModel's variables: its functions use them. Keras
        # tracks variables held in a layer attribute as the layer's weights.
        self.encoder_variables = [
            keras.Variable(
                initializer=variable,
                trainable=variable.trainable and self.trainable,
                dtype=variable.dtype,
                shape=variable.shape,
                name=variable.name.split(":")[0].replace("/", "_"),
            )
            for variable in _encoder_variables(self._encoder_model)
        ]
        self.supports_jit = False
        self.built = True

    def tokenize(self, texts):
        """The encoder's input dict, `[batch, length]` int32 each (trimmed if `dynamic_length`)."""
        texts = as_text_batch(texts)
        if self.preprocessor_handle is None:
            token_ids, padding_mask = self._packer(self._tokenizer(texts))
            inputs = {
                "input_word_ids": token_ids,
                "input_mask": tf.cast(padding_mask, tf.int32),
                "input_type_ids": tf.zeros_like(token_ids),
            }
        else:
            tokens = self._preprocessor_model.tokenize(texts)
            inputs = self._preprocessor_model.bert_pack_inputs(
                [tokens], seq_length=tf.constant(self.sequence_length, tf.int32)
            )
            inputs = {name: tf.cast(inputs[name], tf.int32) for name in ENCODER_INPUTS}
        if self.dynamic_length:
            mask, ids, types = trim_to_bucket(
                inputs["input_mask"],
                self._buckets,
                inputs["input_word_ids"],
                inputs["input_type_ids"],
            )
            inputs = {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}
        return inputs

    def call(self, texts, training=False):
        inputs = self.tokenize(texts)
        outputs = self._encoder_model(inputs, training=bool(training))
        return {
            "sequence_output": outputs["sequence_output"],
            "pooled_output": outputs["pooled_output"],
            "padding_mask": tf.cast(inputs["input_mask"], tf.bool),
        }

    def compute_output_spec(self, texts, training=False):
        batch = texts.shape[0]
        length = None if self.dynamic_length else self.sequence_length
        return {
            "sequence_output": keras.KerasTensor((batch, length, self.hidden_dim), "float32"),
            "pooled_output": keras.KerasTensor((batch, self.hidden_dim), "float32"),
            "padding_mask": keras.KerasTensor((batch, length), "bool"),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder": self.encoder,
                "preprocessor": self.preprocessor_handle,
                "sequence_length": self.sequence_length,
                "dynamic_length": self.dynamic_length,
                "length_buckets": self.length_buckets,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        if serialization_lib.in_safe_mode() is not False:
            raise ValueError(
                "Loading a HubEncoder loads the SavedModel at "
                f"{config['encoder']!r}, graph code from outside this file, which "
                "Keras disallows in safe mode. If you trust it, load with "
                "safe_mode=False."
            )
        return cls(**config)


def _load_saved_model(handle):
    """Loads a SavedModel from a local directory, or a TF Hub handle or URL via tensorflow_hub."""
    if os.path.isdir(os.fspath(handle)):
        return tf.saved_model.load(os.fspath(handle))
    try:
        import tensorflow_hub
    except ImportError as error:
        raise ImportError(
            f"{handle!r} is not a local directory; loading TF Hub handles and URLs needs "
            'tensorflow-hub: pip install "keras-siamese[hub]".'
        ) from error
    return tf.saved_model.load(tensorflow_hub.resolve(handle))


def _encoder_variables(model):
    """The SavedModel's variables, trainable ones first, each once.

    TF Hub's reusable SavedModels list them as attributes; otherwise they are
    the variables its call functions capture.
    """
    if hasattr(model, "trainable_variables") and hasattr(model, "variables"):
        candidates = list(model.trainable_variables) + list(model.variables)
    else:
        functions = model.__call__.concrete_functions
        candidates = [v for f in functions for v in f.trainable_variables]
        candidates += [v for f in functions for v in f.variables]
    seen, ordered = set(), []
    for variable in candidates:
        if id(variable) not in seen:
            seen.add(id(variable))
            ordered.append(variable)
    return ordered


def _check_encoder(model, handle):
    """Calls the encoder on one tiny batch; returns its hidden size or says what is wrong."""
    probe = {name: tf.constant([[2, 3]], tf.int32) for name in ENCODER_INPUTS}
    probe["input_mask"] = tf.ones([1, 2], tf.int32)
    probe["input_type_ids"] = tf.zeros([1, 2], tf.int32)
    try:
        outputs = model(probe, training=False)
    except (TypeError, ValueError, tf.errors.OpError) as error:
        raise ValueError(
            f"{handle!r} is not a TF Hub text encoder: it must take a dict of "
            f"int32 {list(ENCODER_INPUTS)} and `training`. Its call signatures: "
            f"{_signatures(model)}."
        ) from error
    if not isinstance(outputs, dict) or not all(name in outputs for name in ENCODER_OUTPUTS):
        found = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
        raise ValueError(
            f"{handle!r} must return a dict with {list(ENCODER_OUTPUTS)}; it returned {found}."
        )
    return int(outputs["pooled_output"].shape[-1])


def _check_preprocessor(model, handle):
    missing = [name for name in ("tokenize", "bert_pack_inputs") if not hasattr(model, name)]
    if missing:
        raise ValueError(
            f"{handle!r} is not a TF Hub text preprocessor: it lacks {missing}."
        )


def _tokenizer_from_assets(model, handle):
    """A keras-hub tokenizer from the encoder's SentencePiece model or WordPiece vocabulary."""
    if hasattr(model, "sp_model_file"):
        with tf.io.gfile.GFile(model.sp_model_file.asset_path.numpy(), "rb") as file:
            return AlbertTokenizer(proto=file.read())
    if hasattr(model, "vocab_file"):
        with tf.io.gfile.GFile(model.vocab_file.asset_path.numpy(), "r") as file:
            vocabulary = [line.rstrip("\n") for line in file]
        lowercase = bool(getattr(model, "do_lower_case", tf.constant(True)).numpy())
        return BertTokenizer(vocabulary=vocabulary, lowercase=lowercase)
    raise ValueError(
        f"{handle!r} carries no sp_model_file or vocab_file to tokenise with; pass "
        "its TF Hub preprocessor as `preprocessor`."
    )


def _signatures(model):
    call = getattr(model, "__call__", None)
    functions = getattr(call, "concrete_functions", [])
    return [str(function.structured_input_signature) for function in functions] or list(
        model.signatures
    )
