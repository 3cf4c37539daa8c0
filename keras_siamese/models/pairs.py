"""One embedding model applied to every text of a row: the siamese twin for pair and ranking losses."""

import keras

from keras_siamese.checks import check_integer
from keras_siamese.layers.preprocessor import text_input_prefix, token_inputs
from keras_siamese.models.sentence_embedder import SentenceEmbedder


def pair_model(embedding_model, num_texts=2, name="pair_model", mini_batch_size=None):
    """A `SentenceEmbedder` mapping `num_texts` texts per row to stacked embeddings `[B, num_texts, D]`.

    Every text goes through the same `embedding_model` (shared weights), so the
    output is what the pair and ranking losses read: `ContrastiveLoss`,
    `OnlineContrastiveLoss` and `CosineSimilarityLoss` take `[B, 2, D]` with
    `(text_a, text_b)` inputs (`keras_siamese.data.pair_batches`);
    `MultipleNegativesRankingLoss` takes `[B, 2 + H, D]` with `(anchor,
    positive, H hard negatives)` inputs (`anchor_positive_batches` gives H = 0).
    Train it with `compile(loss=...)` and `fit`; export `embedding_model`, which
    holds the trained weights.

    A token-level `embedding_model` (`SentenceEmbedder.from_encoder`) lends
    its preprocessor, which `fit` maps over every text of a row.

    Args:
        embedding_model: a Keras model on tokens with a `preprocessor`, or a
            Keras model (or layer) mapping a `[B]` string tensor to `[B, D]`
            embeddings.
        num_texts: texts per row, >= 2.
        name: the model's name.
        mini_batch_size: rows per chunk of a gradient-cached step (see `SentenceEmbedder`);
            `None` trains on the whole batch at once.

    Example:
    >>> text = keras.Input(shape=(), dtype="float32")
    >>> embedder = keras.Model(text, keras.ops.stack([text, 2 * text], axis=1))
    >>> pairs = pair_model(embedder)
    >>> pairs([np.array([1.0]), np.array([3.0])]).numpy().tolist()
    [[[1.0, 2.0], [3.0, 6.0]]]
    """
    check_integer(num_texts, "num_texts", minimum=2)
    preprocessor = getattr(embedding_model, "preprocessor", None)
    if preprocessor is not None:
        texts = [token_inputs(text_input_prefix(index)) for index in range(num_texts)]
        inputs = {tensor.name: tensor for tokens in texts for tensor in tokens.values()}
    else:
        input_spec = embedding_model.inputs[0] if getattr(embedding_model, "inputs", None) else None
        shape, dtype = (tuple(input_spec.shape[1:]), input_spec.dtype) if input_spec is not None else ((), "string")
        texts = inputs = [keras.Input(shape=shape, dtype=dtype, name=f"text_{index}") for index in range(num_texts)]
    embeddings = keras.ops.stack([embedding_model(text) for text in texts], axis=1)
    return SentenceEmbedder(inputs, embeddings, preprocessor=preprocessor, name=name, mini_batch_size=mini_batch_size)
