"""Encoding many texts fast: batches of similar length, one compiled graph, the caller's order kept."""

import weakref

import keras
import numpy as np
import tensorflow as tf

from keras_siamese.layers.text_encoder import TextEncoder, as_text_batch

_COMPILED = weakref.WeakKeyDictionary()


def encode(model, texts, batch_size=64, sort_by_length=True, output_key=None):
    """Embeds `texts` with `model`, returning float32 `[len(texts), dim]` in the order given.

    Texts are sorted by length before batching, so each batch (which the
    encoders trim to its longest text) carries little padding; the results
    are put back in the caller's order. Lengths are token counts when `model`
    is a Keras model holding a `TextEncoder`, otherwise UTF-8 byte counts.
    A Keras model runs as one `tf.function` over string batches, traced once.

    Args:
        model: a Keras model or layer mapping a `[batch]` string tensor to
            embeddings, or any callable doing so (a loaded SavedModel's
            `signatures["serving_default"]` is called as `model(text=...)`).
        texts: a sequence of `str` or `bytes`.
        batch_size: texts per call.
        sort_by_length: batch texts of similar length together.
        output_key: the output to return when `model` returns a dict with
            several entries.

    Example:
    >>> encode(model, ["a small dog", "a large cat"]).shape  # doctest: +SKIP
    (2, 64)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    texts = [text.encode("utf-8") if isinstance(text, str) else text for text in texts]
    if not all(isinstance(text, bytes) for text in texts):
        raise ValueError("encode takes a sequence of str or bytes texts.")
    run = _compiled(model)
    order = np.argsort(_lengths(model, texts), kind="stable") if sort_by_length else None
    if order is None:
        order = np.arange(len(texts))
    outputs = None
    for start in range(0, len(texts), batch_size):
        indices = order[start : start + batch_size]
        batch = _select(run(tf.constant([texts[i] for i in indices])), output_key)
        if outputs is None:
            outputs = np.empty((len(texts),) + batch.shape[1:], np.float32)
        outputs[indices] = batch
    if outputs is None:
        raise ValueError("encode needs at least one text.")
    return outputs


def _compiled(model):
    """A string-batch graph function for Keras models; other callables as they are."""
    if not isinstance(model, keras.layers.Layer):
        signature = getattr(model, "structured_input_signature", None)
        if signature and not signature[0] and len(signature[1]) == 1:
            (name,) = signature[1]  # a SavedModel signature takes keyword arguments only
            return lambda batch: model(**{name: batch})
        return model
    if model not in _COMPILED:
        _COMPILED[model] = tf.function(
            lambda batch: model(batch, training=False),
            input_signature=[tf.TensorSpec([None], tf.string)],
        )
    return _COMPILED[model]


def _lengths(model, texts):
    encoder = _text_encoder(model)
    if encoder is None:
        return [len(text) for text in texts]
    count = _token_counter(encoder)
    chunks = [count(tf.constant(texts[i : i + 4096])).numpy() for i in range(0, len(texts), 4096)]
    return np.concatenate(chunks) if chunks else []


def _text_encoder(model):
    """The first TextEncoder in `model` (itself, or inside nested models), or None."""
    if isinstance(model, TextEncoder):
        return model
    for layer in getattr(model, "layers", []):
        found = _text_encoder(layer)
        if found is not None:
            return found
    return None


def _token_counter(encoder):
    key = encoder.tokenizer
    if key not in _COMPILED:
        _COMPILED[key] = tf.function(
            lambda batch: encoder.tokenizer(as_text_batch(batch, "encode")).row_lengths(),
            input_signature=[tf.TensorSpec([None], tf.string)],
        )
    return _COMPILED[key]


def _select(outputs, output_key):
    if isinstance(outputs, dict):
        if output_key is None:
            if len(outputs) != 1:
                raise ValueError(
                    f"The model returns {sorted(outputs)}; pass output_key to pick one."
                )
            (output_key,) = outputs
        outputs = outputs[output_key]
    return np.asarray(outputs, np.float32)
