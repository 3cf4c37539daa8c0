"""SemanticSearch with a callable, a Keras model and a reloaded SavedModel signature."""

import string

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.search import EmbeddingIndex, SearchHit, SemanticSearch
from tests.harness import check_bad_input

CORPUS = ["a small dog", "a large cat", "to run quickly", "a cold drink", "the dog barked"]


def letter_counts(texts):
    """A transparent encoder: how often each letter a-z occurs."""
    return np.array([[text.count(letter) for letter in string.ascii_lowercase] for text in texts], "float32")


def oracle_ranking(query, corpus, k):
    vectors = letter_counts([query] + corpus)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = [float(unit[0] @ row) for row in unit[1:]]
    return sorted(range(len(corpus)), key=lambda j: (-scores[j], j))[:k]


def test_search_with_a_callable_returns_ranked_hits():
    search = SemanticSearch.from_texts(letter_counts, CORPUS, ids=[10, 11, 12, 13, 14], labels=list("aabcd"),
                                       batch_size=2)
    results = search.search(["dogs", "drinks"], k=3)
    for query, hits in zip(["dogs", "drinks"], results):
        order = oracle_ranking(query, CORPUS, 3)
        assert [hit.index for hit in hits] == order
        assert [hit.text for hit in hits] == [CORPUS[j] for j in order]
        assert [hit.id for hit in hits] == [10 + j for j in order]
        assert [hit.label for hit in hits] == ["aabcd"[j] for j in order]
        assert hits[0].score >= hits[1].score >= hits[2].score


def test_a_single_string_gives_a_single_list():
    search = SemanticSearch.from_texts(letter_counts, CORPUS)
    hits = search.search("dog", k=2)
    assert all(isinstance(hit, SearchHit) for hit in hits) and len(hits) == 2
    assert hits[0].id is None and hits[0].text == CORPUS[oracle_ranking("dog", CORPUS, 1)[0]]


def test_keras_model_encoder():
    inputs = keras.Input(shape=(), dtype="string")
    outputs = keras.layers.Hashing(num_bins=16, output_mode="one_hot")(inputs)
    model = keras.Model(inputs, outputs)
    search = SemanticSearch.from_texts(model, CORPUS)
    expected = model.predict(np.array(CORPUS, dtype=object), verbose=0)
    np.testing.assert_allclose(search.index.embeddings, expected / np.linalg.norm(expected, axis=1, keepdims=True))
    assert search.search([CORPUS[2]], k=1)[0][0].text == CORPUS[2]


def test_reloaded_saved_model_signature_encoder(tmp_path):
    class Encoder(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            letters = tf.strings.unicode_decode(tf.strings.lower(text), "UTF-8") - ord("a")
            counts = tf.reduce_sum(tf.one_hot(letters, 26), axis=1)
            return {"embedding": counts, "length": tf.strings.length(text)}

    encoder = Encoder()
    tf.saved_model.save(encoder, str(tmp_path), signatures={"serving_default": encoder.serve})
    signature = tf.saved_model.load(str(tmp_path)).signatures["serving_default"]
    search = SemanticSearch(signature, EmbeddingIndex(letter_counts(CORPUS), texts=CORPUS))
    np.testing.assert_allclose(search.encode(["dogs", "cat"]), letter_counts(["dogs", "cat"]))
    assert [hit.index for hit in search.search("dogs", k=5)] == oracle_ranking("dogs", CORPUS, 5)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SemanticSearch("not callable", None), "callable"),
        (lambda: SemanticSearch.from_texts(letter_counts, []), "empty"),
        (lambda: SemanticSearch.from_texts(letter_counts, "a text"), "not a single string"),
        (lambda: SemanticSearch.from_texts(letter_counts, ["a", 3]), "all be strings"),
        (lambda: SemanticSearch.from_texts(lambda t: {"x": letter_counts(t), "y": 1}, ["a"]), "'embedding'"),
    ],
)
def test_bad_input_raises(make, message):
    with pytest.raises(ValueError, match=message):
        make()


TEXTS = [f"text {i} of class {i % 3}" for i in range(30)]
EMBEDDINGS = [[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0]]


def _two_dims(texts):
    """A stand-in text encoder: two numbers per text."""
    return np.array([[len(text), 1.0] for text in texts], "float32")


BAD_INPUT = {
    "SemanticSearch encoder not callable": (lambda: SemanticSearch("encoder", EmbeddingIndex(EMBEDDINGS)), ValueError,
                                            "encoder must be callable, got str"),
    "SemanticSearch index None": (lambda: SemanticSearch(_two_dims, None), ValueError,
                                  "index must be an EmbeddingIndex, got NoneType"),
    "SemanticSearch batch_size 0": (lambda: SemanticSearch.from_texts(_two_dims, ["a"], batch_size=0),
                                    ValueError, "batch_size must be a positive integer, got 0"),
    "SemanticSearch encoder drops texts": (
        lambda: SemanticSearch.from_texts(lambda t: np.ones((1, 2)), TEXTS),
        ValueError, "for 30 texts it returned shape (1, 2)"),
    "SemanticSearch of None": (lambda: SemanticSearch.from_texts(_two_dims, ["a"]).search(None), ValueError,
                               "texts must be a sequence of strings, got NoneType"),
    "SemanticSearch of no texts": (lambda: SemanticSearch.from_texts(_two_dims, []), ValueError,
                                   "texts is empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
