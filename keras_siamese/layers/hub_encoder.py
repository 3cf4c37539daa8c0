"""TF Hub-format text SavedModels (BERT/ALBERT encoders and their preprocessors) as Keras layers."""

import functools
import os
import warnings

import keras
import tensorflow as tf
from keras_hub.models import AlbertTokenizer, BertTokenizer

from keras_siamese.layers.encoder import Encoder
from keras_siamese.layers.preprocessor import Preprocessor, TextPreprocessor

ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
ENCODER_OUTPUTS = ("pooled_output", "sequence_output")


@keras.saving.register_keras_serializable(package="keras_siamese")
class HubEncoder(Encoder):
    """Runs a TF Hub-format encoder SavedModel on token ids, or on raw strings through its preprocessor.

    The encoder is any SavedModel following TF Hub's text-encoder interface
    (albert_en_base, bert_en_uncased_L-12_H-768_A-12, ...): called with a dict
    of int32 `input_word_ids`, `input_mask`, `input_type_ids` `[batch, length]`
    and `training`, it returns a dict with `pooled_output` and
    `sequence_output`. It has `TextEncoder`'s interface: called on the
    `{"token_ids", "padding_mask"}` dict of its `preprocessor`, or on a
    `[batch]` string tensor, and returning `sequence_output`, `pooled_output`
    and `padding_mask`, so `Pooling`, `SentenceEmbedder.from_encoder`, the
    data pipeline and the export treat both alike. The preprocessor is a
    `HubPreprocessor` of the matching TF Hub preprocessor SavedModel or,
    without one, a `TextPreprocessor` with a keras-hub tokenizer built from
    the encoder's own `sp_model_file` (ALBERT) or `vocab_file` and
    `do_lower_case` (BERT).

    Local SavedModel directories load directly; TF Hub/Kaggle handles and
    URLs are resolved by `tensorflow_hub` (`pip install "keras-siamese[hub]"`).
    The encoder's variables are this layer's weights: trainable for
    fine-tuning unless `trainable=False`, saved by `model.save`, and exported
    with the model.

    Loading a `.keras` file holding a HubEncoder reloads the SavedModels from
    their handles, which Keras allows only with `safe_mode=False` (a SavedModel
    is graph code from outside the `.keras` file).

    Args:
        encoder: handle, URL or directory of the encoder SavedModel.
        preprocessor: handle, URL or directory of the matching preprocessor
            SavedModel, or `None` to tokenise with the encoder's assets.
        sequence_length, dynamic_length, length_buckets: as in `TextPreprocessor`.

    Example:
    >>> encoder = HubEncoder("https://tfhub.dev/tensorflow/albert_en_base/3",
    ...     "https://tfhub.dev/tensorflow/albert_en_preprocess/3")  # doctest: +SKIP
    >>> encoder(encoder.preprocessor(["a small dog"]))["pooled_output"].shape  # doctest: +SKIP
    TensorShape([1, 768])
    """

    has_pooler = True  # TF Hub's BERT and ALBERT encoders return their pooler's output

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
        self.encoder = encoder
        self.preprocessor_handle = preprocessor  # a SavedModel handle; the layer is `self.preprocessor`
        self._encoder_model = _load_saved_model(encoder)
        lengths = {"sequence_length": sequence_length, "dynamic_length": dynamic_length, "length_buckets": length_buckets}
        if preprocessor is None:
            tokenizer = _tokenizer_from_assets(self._encoder_model, encoder)
            self.preprocessor = TextPreprocessor(tokenizer, **lengths, name=f"{self.name}_preprocessor")
        else:
            self.preprocessor = HubPreprocessor(preprocessor, **lengths, name=f"{self.name}_preprocessor")
        self._hidden_dim = _check_encoder(self._encoder_model, encoder)
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
        self.built = True

    @property
    def hidden_dim(self):
        return self._hidden_dim

    @property
    def features_dtype(self):
        return "float32"  # the SavedModel's own

    def encode_tokens(self, token_ids, padding_mask, training):
        encoder_inputs = {
            "input_word_ids": token_ids,
            "input_mask": tf.cast(padding_mask, tf.int32),
            "input_type_ids": tf.zeros_like(token_ids),
        }
        outputs = self._encoder_model(encoder_inputs, training=bool(training))
        return outputs["sequence_output"], outputs["pooled_output"]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder": self.encoder,
                "preprocessor": self.preprocessor_handle,
                "sequence_length": self.preprocessor.sequence_length,
                "dynamic_length": self.preprocessor.dynamic_length,
                "length_buckets": self.preprocessor.length_buckets,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        _require_unsafe_deserialization(cls.__name__, config["encoder"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_siamese")
class HubPreprocessor(Preprocessor):
    """A TF Hub text preprocessor SavedModel (its `tokenize` and `bert_pack_inputs`) as a `Preprocessor`.

    Example:
    >>> preprocessor = HubPreprocessor("https://tfhub.dev/tensorflow/albert_en_preprocess/3")  # doctest: +SKIP
    >>> preprocessor(["a small dog"])["token_ids"].shape  # doctest: +SKIP
    TensorShape([1, 8])
    """

    def __init__(self, handle, sequence_length=128, dynamic_length=True, length_buckets=None, **kwargs):
        super().__init__(sequence_length, dynamic_length, length_buckets, **kwargs)
        self.handle = handle
        self._preprocessor_model = _load_saved_model(handle)
        missing = [name for name in ("tokenize", "bert_pack_inputs") if not hasattr(self._preprocessor_model, name)]
        if missing:
            raise ValueError(f"{handle!r} is not a TF Hub text preprocessor: it lacks {missing}.")

    def pack(self, texts):
        packed = self._preprocessor_model.bert_pack_inputs(
            [self._preprocessor_model.tokenize(texts)], seq_length=tf.constant(self.sequence_length, tf.int32)
        )
        return packed["input_word_ids"], packed["input_mask"]

    def get_config(self):
        return {**super().get_config(), "handle": self.handle}

    @classmethod
    def from_config(cls, config):
        _require_unsafe_deserialization(cls.__name__, config["handle"])
        return cls(**config)


def _require_unsafe_deserialization(class_name, handle):
    """Refuses to load a SavedModel named in a config unless Keras' safe mode is off
    (`load_model(..., safe_mode=False)` or `keras.config.enable_unsafe_deserialization()`),
    as Keras' own TFSMLayer does.

    Keras has no public getter of its safe mode; what the mode means, publicly, is that
    Python lambdas are not deserialised, so Keras is asked to deserialise one.
    """
    try:
        keras.saving.deserialize_keras_object(_probe_lambda_config())
    except ValueError:
        raise ValueError(
            f"Loading a {class_name} loads the SavedModel at {handle!r}, graph code from outside "
            "this file, which Keras disallows in safe mode. If you trust it, load with safe_mode=False."
        ) from None


@functools.cache
def _probe_lambda_config():
    """A serialised do-nothing lambda (Keras warns when it serialises one: not news here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return keras.saving.serialize_keras_object(_PROBE_LAMBDA)


_PROBE_LAMBDA = lambda: None  # noqa: E731  Keras serialises lambdas only by their source


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
