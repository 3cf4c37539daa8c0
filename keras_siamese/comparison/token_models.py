"""Token-level twins of strings-in models: tokenise in the input pipeline, compile the rest.

A `TextEncoder` tokenises inside the graph, which keeps an exported model
strings-in but stops XLA (string ops cannot be compiled). For training and
bulk embedding, the texts are tokenised in the `tf.data` pipeline instead and
the model starts at the token ids: the same layer objects (so the same
weights) in a functional model XLA can compile. Batches keep their dynamic
length: each is cut to its longest text rounded up to one of the encoder's
length buckets, so a compiled step is traced once per bucket length.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_siamese.layers.dynamic_length import check_length_buckets, trim_to_bucket
from keras_siamese.layers.text_encoder import as_text_batch

TOKEN_IDS = "token_ids"
PADDING_MASK = "padding_mask"


def token_inputs():
    """`{"token_ids", "padding_mask"}` Keras inputs, int32 `[batch, length]`."""
    return {
        TOKEN_IDS: keras.Input(shape=(None,), dtype="int32", name=TOKEN_IDS),
        PADDING_MASK: keras.Input(shape=(None,), dtype="int32", name=PADDING_MASK),
    }


def encode_tokens(encoder, tokens, training=None):
    """The features `encoder` returns for texts, computed from their tokens.

    `tokens` is a dict like `tokenize_texts` returns. The output dict has the
    keys of `TextEncoder.call` (`sequence_output`, `pooled_output`,
    `padding_mask`), so it feeds `keras_siamese.layers.Pooling` unchanged.
    """
    token_ids, padding_mask = tokens[TOKEN_IDS], tokens[PADDING_MASK]
    backbone = encoder.backbone
    inputs = {TOKEN_IDS: token_ids, PADDING_MASK: padding_mask}
    if "segment_ids" in backbone.input:
        inputs["segment_ids"] = keras.ops.zeros_like(token_ids)
    outputs = backbone(inputs, training=training)
    if isinstance(outputs, dict):
        sequence_output = outputs["sequence_output"]
        pooled_output = outputs.get("pooled_output", sequence_output[:, 0, :])
    else:
        sequence_output, pooled_output = outputs, outputs[:, 0, :]
    return {
        "sequence_output": sequence_output,
        "pooled_output": pooled_output,
        PADDING_MASK: keras.ops.cast(padding_mask, "bool"),
    }


def tokenize_texts(encoder, texts):
    """`{"token_ids", "padding_mask"}` int32 tensors of a batch of texts, cut to its bucket length."""
    token_ids, padding_mask = encoder.packer(encoder.tokenizer(_as_strings(texts)))
    padding_mask, token_ids = trim_to_bucket(padding_mask, _length_buckets(encoder), token_ids)
    return {TOKEN_IDS: tf.cast(token_ids, tf.int32), PADDING_MASK: tf.cast(padding_mask, tf.int32)}


def tokenize_batches(dataset, encoder):
    """Maps a dataset of `(texts, labels)` batches to `(tokens, labels)` batches."""
    return dataset.map(
        lambda texts, labels: (tokenize_texts(encoder, texts), labels),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    ).prefetch(tf.data.AUTOTUNE)


def token_lengths(encoder, texts, batch_size=4096):
    """Tokens per text after packing (`[CLS]`, `[SEP]` and truncation included), int64 `[n]`.

    Example:
    >>> token_lengths(encoder, ["a dog", "a very small dog"])  # doctest: +SKIP
    array([4, 6])
    """
    lengths = []
    for start in range(0, len(texts), batch_size):
        _, padding_mask = encoder.packer(encoder.tokenizer(_as_strings(texts[start:start + batch_size])))
        lengths.append(tf.reduce_sum(tf.cast(padding_mask, tf.int64), axis=1).numpy())
    return np.concatenate(lengths) if lengths else np.zeros(0, np.int64)


def predict_in_length_order(token_model, encoder, texts, lengths=None, batch_size=256, jit_compile=False):
    """Runs `token_model` over `texts`, batched in order of length, and returns rows in input order.

    Texts of similar length share a batch, so little compute goes to padding.
    `lengths` (from `token_lengths`) saves tokenising twice. With
    `jit_compile`, the forward pass is compiled by XLA once per bucket length.

    Example:
    >>> vectors = predict_in_length_order(token_model, encoder, texts)  # doctest: +SKIP
    """
    if len(texts) == 0:
        raise ValueError("no texts to embed.")
    lengths = token_lengths(encoder, texts) if lengths is None else np.asarray(lengths)
    order = np.argsort(lengths, kind="stable")
    ordered = tf.data.Dataset.from_tensor_slices(tf.constant([texts[i] for i in order], tf.string))
    tokens = ordered.batch(batch_size).map(
        lambda batch: tokenize_texts(encoder, batch), num_parallel_calls=tf.data.AUTOTUNE
    ).prefetch(tf.data.AUTOTUNE)
    forward = tf.function(
        lambda batch: token_model(batch, training=False), jit_compile=jit_compile, reduce_retracing=True
    )
    outputs = np.concatenate([forward(batch).numpy() for batch in tokens])
    result = np.empty_like(outputs)
    result[order] = outputs
    return result


def _length_buckets(encoder):
    if not encoder.dynamic_length:
        return (encoder.sequence_length,)
    return check_length_buckets(encoder.length_buckets, encoder.sequence_length)


def _as_strings(texts):
    return as_text_batch(texts, "tokenize_texts")
