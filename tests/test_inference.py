"""encode: results in the caller's order, equal to one unsorted call, for Keras models and SavedModel signatures."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese import inference
from keras_siamese.export import export_saved_model
from keras_siamese.inference import encode
from keras_siamese.layers import Pooling, TextEncoder, token_inputs
from keras_siamese.models import SentenceEmbedder
from tests.harness import check_bad_input

WORDS = "a dog cat barked at the small large red house tree of in on".split()
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
RNG = np.random.default_rng(0)
TEXTS = [" ".join(RNG.choice(WORDS, size=RNG.integers(0, 30))) for _ in range(45)]


@pytest.fixture(scope="module")
def model():
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCABULARY), num_layers=1, num_heads=2, hidden_dim=16,
        intermediate_dim=32, dropout=0.0, max_sequence_length=64,
    )
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCABULARY)
    text = keras.Input(shape=(), dtype="string")
    return keras.Model(text, Pooling("mean")(TextEncoder(backbone, tokenizer, sequence_length=64)(text)))


def one_by_one(model, texts):
    return np.concatenate([model(tf.constant([text])).numpy() for text in texts])


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_sorted_batches_come_back_in_the_callers_order(model, batch_size):
    want = one_by_one(model, TEXTS)
    got = encode(model, TEXTS, batch_size=batch_size)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(encode(model, TEXTS, batch_size=batch_size, sort_by_length=False), want, atol=1e-5)


@pytest.mark.parametrize("batch_size, batches_per_window", [(1, 64), (7, 2), (64, 1)])
def test_token_models_tokenise_once_and_trace_once(model, monkeypatch, batch_size, batches_per_window):
    encoder = next(layer for layer in model.layers if isinstance(layer, TextEncoder))
    tokens = token_inputs()
    token_model = SentenceEmbedder(inputs=tokens, outputs=Pooling("mean")(encoder(tokens)), preprocessor=encoder.preprocessor)
    monkeypatch.setattr(inference, "_BATCHES_PER_WINDOW", batches_per_window)  # several windows of texts
    got = encode(token_model, TEXTS, batch_size=batch_size)
    np.testing.assert_allclose(got, one_by_one(model, TEXTS), atol=1e-5)  # oracle: the strings model, text by text
    _, run = inference._traced(encoder.preprocessor, token_model)
    assert run.experimental_get_tracing_count() == 1  # batches of every length bucket, one trace


def test_bytes_and_str_give_the_same_embeddings(model):
    np.testing.assert_array_equal(
        encode(model, [t.encode() for t in TEXTS[:5]]), encode(model, TEXTS[:5])
    )


def test_savedmodel_signature(model, tmp_path):
    serving = tf.saved_model.load(export_saved_model(model, str(tmp_path))).signatures["serving_default"]
    np.testing.assert_allclose(encode(serving, TEXTS, batch_size=8), one_by_one(model, TEXTS), atol=1e-5)


def test_bad_arguments_are_refused(model):
    with pytest.raises(ValueError, match="batch_size"):
        encode(model, TEXTS, batch_size=0)
    with pytest.raises(ValueError, match="str or bytes"):
        encode(model, [1, 2])
    dim = one_by_one(model, TEXTS[:1]).shape[1]
    empty = encode(model, [])
    assert empty.shape == (0, dim) and empty.dtype == np.float32
    two_outputs = lambda batch: {"a": tf.zeros([tf.size(batch), 2]), "b": tf.ones([tf.size(batch), 2])}  # noqa: E731
    with pytest.raises(ValueError, match="output_key"):
        encode(two_outputs, TEXTS)
    np.testing.assert_array_equal(encode(two_outputs, TEXTS[:3], output_key="b"), np.ones((3, 2)))


BAD_INPUT = {
    "encode of numbers": (lambda: inference.encode(lambda t: t, [1, 2]), ValueError, "str or bytes"),
    "encode batch size 0": (lambda: inference.encode(lambda t: t, ["a"], batch_size=0),
                            ValueError, "batch_size must be a positive integer, got 0"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
