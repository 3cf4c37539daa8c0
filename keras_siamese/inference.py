"""The one encode path: texts in batches of similar length, one traced graph, the caller's order kept.

`SentenceEmbedder.encode`, `SemanticSearch`, the evaluation callbacks,
`compare` and the main job all embed texts through `encode`.
"""

import weakref

import keras
import numpy as np
import tensorflow as tf

from keras_siamese.checks import check_integer
from keras_siamese.layers.preprocessor import PADDING_MASK, TOKEN_IDS, Preprocessor
from keras_siamese.losses.matryoshka import check_truncate_dim, truncate_embeddings

_TRACED = weakref.WeakKeyDictionary()
# Texts tokenised in one call, then sorted by token count: 64 batches at a time.
_BATCHES_PER_WINDOW = 64


def encode(model, texts, batch_size=64, sort_by_length=True, output_key=None, preprocessor=None, truncate_dim=None):
    """Embeds `texts` with `model`, returning float32 `[len(texts), dim]` in the order given
    (`[0, dim]` for no texts).

    With a `keras_siamese` preprocessor (the `preprocessor` argument, else
    `model.preprocessor` as a `SentenceEmbedder` has), texts are tokenised once,
    a window of `batch_size * 64` texts at a time; each window's texts are
    sorted by token count, cut into batches, and each batch, trimmed to its
    length bucket, is embedded by one traced call of the token model: the model
    sees batches that carry little padding. With another preprocessor (a
    keras-hub task's), or none (`model` takes string batches), texts are sorted
    by UTF-8 length and each batch runs preprocessor and model in one traced
    call. Either way the results come back in the caller's order, and a Keras
    model runs as one `tf.function`, traced once for batches of any shape.

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
    if isinstance(preprocessor, Preprocessor) and isinstance(model, keras.layers.Layer):
        embed_batches = _token_batches(model, preprocessor, output_key)
    else:
        embed_batches = _text_batches(model, preprocessor, output_key)
    if texts:
        window = batch_size * _BATCHES_PER_WINDOW
        result = np.concatenate([embed_batches(texts[start : start + window], batch_size, sort_by_length)
                                 for start in range(0, len(texts), window)])
    else:  # the model's output shape, for no rows
        result = embed_batches([b""], 1, False)[:0]
    return result if truncate_dim is None else _truncated(result, truncate_dim)


def _token_batches(model, preprocessor, output_key):
    """`embed(texts, batch_size, sort)`: the texts tokenised in one call, then embedded in
    batches of similar token counts, each trimmed to its length bucket."""
    tokenize, run = _traced(preprocessor, model)
    buckets = np.asarray(preprocessor.buckets)

    def embed(texts, batch_size, sort):
        tokens = {name: value.numpy() for name, value in tokenize(tf.constant(texts, tf.string)).items()}
        lengths = tokens[PADDING_MASK].sum(axis=1)
        order = np.argsort(lengths, kind="stable") if sort else np.arange(len(lengths))
        batches = []
        for rows in _split(order, batch_size):
            length = buckets[np.argmax(buckets >= lengths[rows].max())]
            batches.append(_select(run({name: value[rows, :length] for name, value in tokens.items()}), output_key))
        return _in_given_order(batches, order)

    return embed


def _text_batches(model, preprocessor, output_key):
    """`embed(texts, batch_size, sort)`: batches of texts of similar UTF-8 length, each
    preprocessed (if there is a preprocessor) and embedded in one traced call."""
    _, run = _traced(preprocessor, model)

    def embed(texts, batch_size, sort):
        order = np.argsort([len(text) for text in texts], kind="stable") if sort else np.arange(len(texts))
        batches = [
            _select(run(tf.constant([texts[i] for i in rows], tf.string)), output_key)
            for rows in _split(order, batch_size)
        ]
        return _in_given_order(batches, order)

    return embed


def _split(order, batch_size):
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def _in_given_order(batches, order):
    """The rows of `batches` (embedded in `order`) back in the texts' order."""
    outputs = np.concatenate(batches)
    result = np.empty_like(outputs)
    result[order] = outputs
    return result


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


def _traced(preprocessor, model):
    """`(tokenize, run)`: for Keras models, graph functions of the preprocessor (None without
    one) and of the model, the model's traced on token batches when `preprocessor` is a
    `keras_siamese` `Preprocessor`, else on string batches with the preprocessor inside
    (see benchmarks/README.md, encoding). Other callables run as they are."""
    if not isinstance(model, keras.layers.Layer):
        signature = getattr(model, "structured_input_signature", None)
        if signature and not signature[0] and len(signature[1]) == 1:
            (name,) = signature[1]  # a SavedModel signature takes keyword arguments only
            return None, lambda batch: model(**{name: batch})
        return None, model
    traced = _TRACED.setdefault(model, {})
    if id(preprocessor) not in traced:
        texts = tf.TensorSpec([None], tf.string)
        if isinstance(preprocessor, Preprocessor):  # its outputs: int32 [batch, length] tensors
            tokens = {name: tf.TensorSpec([None, None], tf.int32) for name in (TOKEN_IDS, PADDING_MASK)}
            tokenize = tf.function(preprocessor, input_signature=[texts])
            run = tf.function(lambda tokens: model(tokens, training=False), input_signature=[tokens])
        else:
            prepare = preprocessor if preprocessor is not None else (lambda texts: texts)
            tokenize, run = None, tf.function(lambda texts: model(prepare(texts), training=False), input_signature=[texts])
        traced[id(preprocessor)] = tokenize, run
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
