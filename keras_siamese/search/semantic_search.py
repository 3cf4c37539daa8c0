"""Text in, most similar corpus entries out: an encoder in front of an `EmbeddingIndex`."""

import dataclasses

import keras
import numpy as np

from keras_siamese import inference
from keras_siamese.checks import check_integer
from keras_siamese.search.exact import check_embeddings
from keras_siamese.search.index import EmbeddingIndex


@dataclasses.dataclass(frozen=True)
class SearchHit:
    """One search result: the position in the index, its score and what the index stores there."""

    index: int
    score: float
    id: object = None
    text: object = None
    label: object = None


class SemanticSearch:
    """Embeds query texts with `encoder` and looks them up in `index`.

    `encoder` is any of:
    - a Keras model: a token model with a `preprocessor` (`SentenceEmbedder`), or
      one mapping a batch of strings to embeddings;
    - a SavedModel signature, e.g. `tf.saved_model.load(dir).signatures["serving_default"]`
      (one string input, one output);
    Both are run by `keras_siamese.inference.encode` (batches of similar length).
    - any callable `list of str -> [n, d] embeddings` (a dict with one entry also works).

    Args:
        encoder: as above.
        index: an `EmbeddingIndex` of embeddings made by the same encoder.
        batch_size: texts embedded per call.

    Example:
    >>> search = SemanticSearch.from_texts(model, corpus_texts)  # doctest: +SKIP
    >>> [hit.text for hit in search.search("a small dog", k=3)]  # doctest: +SKIP
    """

    def __init__(self, encoder, index, batch_size=256):
        _check_encoder(encoder, batch_size)
        if not isinstance(index, EmbeddingIndex):
            raise ValueError(f"index must be an EmbeddingIndex, got {type(index).__name__}.")
        self.encoder = encoder
        self.index = index
        self.batch_size = batch_size

    @classmethod
    def from_texts(cls, encoder, texts, ids=None, labels=None, batch_size=256, **index_kwargs):
        """Embeds `texts` with `encoder` and indexes them (`index_kwargs` go to `EmbeddingIndex`)."""
        _check_encoder(encoder, batch_size)
        texts = _check_texts(texts)
        embeddings = _encode(encoder, texts, batch_size)
        index = EmbeddingIndex(embeddings, ids=ids, texts=texts, labels=labels, **index_kwargs)
        return cls(encoder, index, batch_size)

    def encode(self, texts):
        """Embeddings of `texts` as a float32 `[n, d]` numpy array."""
        return _encode(self.encoder, _check_texts(texts), self.batch_size)

    def search(self, texts, k=10):
        """The `k` best hits for each text (`k` is cut to the index size).

        Returns:
            For a single string, a list of `SearchHit`, best first; for a
            sequence of strings, one such list per string.
        """
        single = isinstance(texts, (str, bytes))
        scores, indices = self.index.search(self.encode([texts] if single else texts), k)
        results = [
            [self._hit(int(position), float(score)) for score, position in zip(row_scores, row_indices)]
            for row_scores, row_indices in zip(scores, indices)
        ]
        return results[0] if single else results

    def _hit(self, position, score):
        def column(values):
            return None if values is None else values[position]

        index = self.index
        return SearchHit(position, score, column(index.ids), column(index.texts), column(index.labels))


def _check_encoder(encoder, batch_size):
    if not callable(encoder):
        raise ValueError(f"encoder must be callable, got {type(encoder).__name__}.")
    check_integer(batch_size, "batch_size")


def _encode(encoder, texts, batch_size):
    """`encoder`'s embeddings of the checked `texts`, float32 `[n, d]`."""
    if isinstance(encoder, keras.layers.Layer) or hasattr(encoder, "structured_input_signature"):
        return inference.encode(encoder, texts, batch_size=batch_size)
    parts = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        part = _to_numpy(encoder(batch))
        if part.ndim != 2 or len(part) != len(batch):
            raise ValueError(
                "The encoder must return one embedding per text, shape [texts, dimension]: "
                f"for {len(batch)} texts it returned shape {part.shape}."
            )
        parts.append(part)
    return check_embeddings(np.concatenate(parts), "the encoder's embeddings")


def _to_numpy(outputs):
    if isinstance(outputs, dict):
        if len(outputs) == 1:
            (outputs,) = outputs.values()
        elif "embedding" in outputs:
            outputs = outputs["embedding"]
        else:
            raise ValueError(f"The encoder returned outputs {sorted(outputs)}; expected one, or 'embedding'.")
    return keras.ops.convert_to_numpy(outputs)


def _check_texts(texts):
    if isinstance(texts, (str, bytes)):
        raise ValueError("texts must be a sequence of strings, not a single string.")
    try:
        texts = texts.tolist() if isinstance(texts, np.ndarray) else list(texts)
    except TypeError:
        raise ValueError(f"texts must be a sequence of strings, got {type(texts).__name__}.") from None
    if not texts:
        raise ValueError("texts is empty.")
    if not all(isinstance(text, (str, bytes)) for text in texts):
        raise ValueError("texts must all be strings.")
    return texts
