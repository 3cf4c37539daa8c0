"""The one encode path: texts in batches of similar length, one traced graph, the caller's order kept.

`TripletSemiHard.predict`, `SemanticSearch`, the evaluation callbacks,
`compare` and the main job all embed texts through `encode`.
"""

import weakref

import keras
import numpy as np
import tensorflow as tf

from keras_siamese.checks import check_integer
from keras_siamese.losses.matryoshka import check_truncate_dim, truncate_embeddings

_TRACED = weakref.WeakKeyDictionary()


def encode(model, texts, batch_size=64, sort_by_length=True, output_key=None, preprocessor=None, truncate_dim=None):
    """Embeds `texts` with `model`, returning float32 `[len(texts), dim]` in the order given
    (`[0, dim]` for no texts).

    With a preprocessor (the `preprocessor` argument, else `model.preprocessor`
    as `TripletSemiHard` and keras-hub's tasks have), texts are sorted by token
    count (UTF-8 length for preprocessors that cannot count them) and each
    batch is preprocessed and embedded in one traced call, so
    the model sees token batches that carry little padding. Without one,
    `model` takes string batches, sorted by UTF-8 length. Either way the
    results come back in the caller's order, and a Keras model runs as one
    `tf.function` (traced for a few batch shapes, then for any).

    Args:
        model: a Keras model or layer; or any callable mapping a `[batch]`
            string tensor to embeddings (a loaded SavedModel's
            `signatures["serving_default"]` is called as `model(text=...)`).
        texts: a sequence of `str` or `bytes`.
        batch_size: texts per call.
        sort_by_length: batch texts of similar length together.
        output_key: the output to return when `model` returns a dict with
            several entries (default: `"embedding"`).
        preprocessor: strings -> model inputs; default `model.preprocessor`.
        truncate_dim: return the first `truncate_dim` dimensions of each
            embedding, L2-normalised again (a model trained with
            `keras_siamese.losses.MatryoshkaLoss`); None returns them all.

    Example:
    >>> encode(model, ["a small dog", "a large cat"]).shape  # doctest: +SKIP
    (2, 64)
    """
    check_integer(batch_size, "batch_size")
    if truncate_dim is not None:
        check_truncate_dim(truncate_dim, _embedding_size(model))
    texts = [text.encode("utf-8") if isinstance(text, str) else text for text in texts]
    if not all(isinstance(text, bytes) for text in texts):
        raise ValueError("encode takes a sequence of str or bytes texts.")
    preprocessor = preprocessor if preprocessor is not None else getattr(model, "preprocessor", None)
    if not texts:
        empty = _select(_traced(model, preprocessor)(tf.constant([b""], tf.string)), output_key)
        empty = empty if truncate_dim is None else _truncated(empty, truncate_dim)
        return np.zeros((0,) + empty.shape[1:], empty.dtype)
    if sort_by_length:
        count_tokens = getattr(preprocessor, "token_lengths", None)  # keras-hub's preprocessors: bytes
        lengths = count_tokens(texts) if count_tokens is not None else [len(text) for text in texts]
        order = np.argsort(lengths, kind="stable")
    else:
        order = np.arange(len(texts))
    run = _traced(model, preprocessor)
    outputs = np.concatenate([
        _select(run(tf.constant([texts[i] for i in order[start : start + batch_size]], tf.string)), output_key)
        for start in range(0, len(texts), batch_size)
    ])
    result = np.empty_like(outputs)
    result[order] = outputs
    return result if truncate_dim is None else _truncated(result, truncate_dim)


def is_texts(x):
    """Whether `x` is a batch of texts: a non-empty list or tuple of str/bytes, or a 1-D numpy
    array or tf.string tensor of them.

    Example:
    >>> is_texts(["a dog", b"a cat"]), is_texts([1, 2])
    (True, False)
    """
    if isinstance(x, tf.Tensor):
        return x.dtype == tf.string and x.shape.rank == 1
    if isinstance(x, np.ndarray):
        return x.ndim == 1 and (x.dtype.kind in "SU" or (x.dtype == object and all(isinstance(t, (str, bytes)) for t in x)))
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(t, (str, bytes)) for t in x)


def _traced(model, preprocessor):
    """For Keras models, one graph function from a string batch to the model's outputs, the
    preprocessor inside it (see benchmarks/README.md, encoding); other callables as they are."""
    if not isinstance(model, keras.layers.Layer):
        signature = getattr(model, "structured_input_signature", None)
        if signature and not signature[0] and len(signature[1]) == 1:
            (name,) = signature[1]  # a SavedModel signature takes keyword arguments only
            return lambda batch: model(**{name: batch})
        return model
    traced = _TRACED.setdefault(model, {})
    if id(preprocessor) not in traced:
        prepare = preprocessor if preprocessor is not None else (lambda texts: texts)
        traced[id(preprocessor)] = tf.function(
            lambda texts: model(prepare(texts), training=False), reduce_retracing=True
        )
    return traced[id(preprocessor)]


def _embedding_size(model):
    """The last dimension of a Keras model's (first) output, None where it is not known."""
    outputs = getattr(model, "outputs", None) if isinstance(model, keras.Model) else None
    return outputs[0].shape[-1] if outputs else None


def _truncated(embeddings, dim):
    check_truncate_dim(dim, embeddings.shape[-1])
    return truncate_embeddings(embeddings, dim).numpy()


def _select(outputs, output_key):
    if isinstance(outputs, dict):
        if output_key is None:
            if len(outputs) == 1:
                (output_key,) = outputs
            elif "embedding" in outputs:  # the exported signatures' output
                output_key = "embedding"
            else:
                raise ValueError(f"The model returns {sorted(outputs)}; pass output_key to pick one.")
        outputs = outputs[output_key]
    return np.asarray(outputs, np.float32)
