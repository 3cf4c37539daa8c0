"""Strings to token ids: the one preprocessor that tf.data, `predict` and the export all run."""

import base64

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from keras_hub.layers import StartEndPacker

from keras_siamese.checks import is_integer
from keras_siamese.layers.dynamic_length import check_length_buckets, trim_to_bucket

TOKEN_IDS = "token_ids"
PADDING_MASK = "padding_mask"


class Preprocessor(keras.layers.Layer):
    """Base of the preprocessors: texts in, `{"token_ids", "padding_mask"}` out.

    Subclasses implement `pack(texts)`, returning int32 `[batch, sequence_length]`
    token ids and padding mask of a flat tf.string batch. This base takes texts
    as str, bytes, lists, numpy arrays or tf.string, replaces invalid UTF-8,
    and with `dynamic_length=True` cuts each batch to its longest text rounded
    up to the next of `length_buckets`: short texts stop paying for
    `sequence_length`, and a traced or compiled step sees few shapes.

    Output: a dict of int32 `[batch, length]` tensors, `"token_ids"` and
    `"padding_mask"` (1 for a token, 0 for padding), the inputs of the
    encoders and of `token_inputs()`.
    """

    def __init__(self, sequence_length=128, dynamic_length=True, length_buckets=None, **kwargs):
        super().__init__(**kwargs)
        if not is_integer(sequence_length) or sequence_length < 3:
            raise ValueError(
                "sequence_length must be an integer leaving room for [CLS], [SEP] and at least "
                f"one token, got {sequence_length!r}."
            )
        self.sequence_length = sequence_length
        self.dynamic_length = dynamic_length
        self.length_buckets = length_buckets
        self.buckets = check_length_buckets(length_buckets, sequence_length) if dynamic_length else (sequence_length,)
        self.supports_jit = False  # string ops

    def pack(self, texts):
        raise NotImplementedError

    def build(self, input_shape):
        self.built = True

    def __call__(self, texts, **kwargs):
        if isinstance(texts, (str, bytes, list, tuple, np.ndarray)):  # Keras takes tensors only
            texts = as_text_batch(texts)
        return super().__call__(texts, **kwargs)

    def call(self, texts):
        token_ids, padding_mask = self.pack(as_text_batch(texts))
        padding_mask, token_ids = trim_to_bucket(tf.cast(padding_mask, tf.int32), self.buckets, token_ids)
        return {TOKEN_IDS: tf.cast(token_ids, tf.int32), PADDING_MASK: padding_mask}

    def compute_output_spec(self, texts):
        length = None if self.dynamic_length else self.sequence_length
        return {name: keras.KerasTensor((texts.shape[0], length), "int32") for name in (TOKEN_IDS, PADDING_MASK)}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "dynamic_length": self.dynamic_length,
                "length_buckets": self.length_buckets,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_siamese")
class TextPreprocessor(Preprocessor):
    """Tokenises texts with a keras-hub tokenizer and packs them as `[CLS] tokens [SEP]`.

    Runs inside `tf.data` (`preprocess_batches`), inside `predict`, and inside an
    exported SavedModel's text signature, so a model sees the same tokens in
    training and in serving. The special tokens are the tokenizer's own
    (`cls_token_id`/`sep_token_id`, or `start_token_id`/`end_token_id`, and
    `pad_token_id`). Empty strings give `[CLS] [SEP]`; texts that are not
    valid UTF-8 are tokenised with the invalid bytes replaced; texts longer
    than `sequence_length` tokens are truncated. Output and length trimming
    as in `Preprocessor`.

    Args:
        tokenizer: a keras-hub tokenizer (SentencePiece, WordPiece, BPE ...).
        sequence_length: the most tokens per text, `[CLS]` and `[SEP]` included.
        dynamic_length: trim each batch to its bucketed longest text.
        length_buckets: the lengths a batch may be trimmed to; `None` gives
            `default_length_buckets(sequence_length)` (multiples of 4 up to 64,
            of 16 up to 128, then of 32). `sequence_length` is always one.

    Example:
    >>> preprocessor = TextPreprocessor.from_preset("path/to/all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> preprocessor(["a small dog", ""])["token_ids"].shape  # doctest: +SKIP
    TensorShape([2, 8])
    """

    def __init__(self, tokenizer, sequence_length=128, dynamic_length=True, length_buckets=None, **kwargs):
        super().__init__(sequence_length, dynamic_length, length_buckets, **kwargs)
        self.tokenizer = tokenizer
        self.packer = StartEndPacker(
            sequence_length=sequence_length,
            start_value=_special_token_id(tokenizer, "cls_token_id", "start_token_id"),
            end_value=_special_token_id(tokenizer, "sep_token_id", "end_token_id"),
            pad_value=_special_token_id(tokenizer, "pad_token_id"),
            return_padding_mask=True,
            dtype="int32",
        )

    @classmethod
    def from_preset(cls, preset, sequence_length=128, **kwargs):
        """The tokenizer of a keras-hub preset name or directory (Hugging Face directories too).

        Example:
        >>> preprocessor = TextPreprocessor.from_preset("bert_tiny_en_uncased")  # doctest: +SKIP
        """
        return cls(keras_hub.models.Tokenizer.from_preset(preset), sequence_length=sequence_length, **kwargs)

    def pack(self, texts):
        return self.packer(self.tokenizer(texts))

    def token_lengths(self, texts, batch_size=4096):
        """Tokens per text after packing (`[CLS]`, `[SEP]` and truncation included), int64 `[n]`.

        Example:
        >>> preprocessor.token_lengths(["a dog", "a very small dog"])  # doctest: +SKIP
        array([4, 6])
        """
        lengths = [
            self._count_tokens(tf.constant(texts[start : start + batch_size], tf.string)).numpy()
            for start in range(0, len(texts), batch_size)
        ]
        return np.concatenate(lengths) if lengths else np.zeros(0, np.int64)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def _count_tokens(self, texts):
        tokens = self.tokenizer(as_text_batch(texts))
        return tf.minimum(tokens.row_lengths() + 2, self.sequence_length)

    def get_config(self):
        return {**super().get_config(), "tokenizer": _serialize_with_vocabulary(self.tokenizer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["tokenizer"] = keras.layers.deserialize(config["tokenizer"])
        return cls(**config)


def preprocess_batches(dataset, preprocessor):
    """Maps `preprocessor` over a dataset of `texts` or `(texts, ...)` batches, in parallel.

    `texts` may be one batch of strings or a tuple of them (one per text of a
    row, as pair batches have); the tokens of text `i` of a row are then keyed
    `text_{i}_token_ids`, `text_{i}_padding_mask`, the names of
    `token_inputs(text_input_prefix(i))`. Batches whose inputs are already a
    dict (of token ids) pass through unchanged.

    Example:
    >>> tokens = preprocess_batches(class_balanced_batches(texts, labels), preprocessor)  # doctest: +SKIP
    """

    spec = dataset.element_spec
    if isinstance(spec[0] if isinstance(spec, tuple) else spec, dict):
        return dataset

    def preprocess(texts, *rest):
        if isinstance(texts, tuple):
            tokens = {
                text_input_prefix(index) + key: value
                for index, column in enumerate(texts)
                for key, value in preprocessor(column).items()
            }
        else:
            tokens = preprocessor(texts)
        return (tokens, *rest) if rest else tokens

    return dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(
        tf.data.AUTOTUNE
    )


def text_input_prefix(index):
    """The input-name prefix of text `index` of a row in models taking several texts per row."""
    return f"text_{index}_"


def token_inputs(prefix=""):
    """`{"token_ids", "padding_mask"}` Keras inputs, int32 `[batch, length]`: a token model's inputs.

    `prefix` goes before the input names (models with several texts per row).

    Example:
    >>> [tensor.name for tensor in token_inputs("query_").values()]
    ['query_token_ids', 'query_padding_mask']
    """
    return {
        name: keras.Input(shape=(None,), dtype="int32", name=prefix + name) for name in (TOKEN_IDS, PADDING_MASK)
    }


def as_text_batch(texts):
    """`texts` (one str or bytes, or a list, 1-D numpy array or tf.string `[batch]` of them)
    as a tf.string `[batch]` with invalid UTF-8 bytes replaced; other ranks are a ValueError."""
    if isinstance(texts, (str, bytes)):
        texts = [texts]
    if isinstance(texts, (list, tuple)) or (isinstance(texts, np.ndarray) and texts.dtype == object):
        texts = np.asarray(texts, object)
        if texts.ndim != 1:
            raise ValueError(f"Texts must be a flat batch (rank 1), got an array of shape {texts.shape}.")
        texts = [text.encode("utf-8") if isinstance(text, str) else text for text in texts]
        texts = tf.constant(texts, tf.string, shape=[len(texts)])
    texts = tf.convert_to_tensor(texts)
    if texts.dtype != tf.string:
        raise ValueError(f"Texts must be strings (tf.string), got dtype {texts.dtype.name}.")
    if texts.shape.rank == 0:
        texts = tf.reshape(texts, [1])
    elif texts.shape.rank is not None and texts.shape.rank != 1:
        raise ValueError(f"Texts must be a flat batch (rank 1), got shape {texts.shape}.")
    # Checked when the graph runs too: TF Serving feeds tensors of any shape to a signature.
    texts = tf.ensure_shape(texts, [None])
    return tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace")


def _special_token_id(tokenizer, *names):
    for name in names:
        if getattr(tokenizer, name, None) is not None:
            return getattr(tokenizer, name)
    raise ValueError(f"{type(tokenizer).__name__} defines none of {names}; texts cannot be packed without them.")


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
