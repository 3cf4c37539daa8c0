"""AlbertEncoder loads Hugging Face and keras-hub directories of a random ALBERT to the backbone's numbers."""

import os

import numpy as np
import pytest
import tensorflow as tf
from keras_hub.models import AlbertTokenizer

from keras_siamese.export.hf_checkpoint import write_hf_checkpoint
from keras_siamese.layers import AlbertEncoder, train_sentencepiece
from tests.harness import check_bad_input
from tests.layers.albert_checkpoints import (
    random_albert,
    reference_features,
    wordnet_glosses,
)

TEXTS = wordnet_glosses(12, offset=3000) + ["", "Ünïcödé naïve café ☃", "dog " * 80]
SEQUENCE_LENGTH = 48


@pytest.fixture(scope="module")
def albert():
    # Two groups, so a mix-up between group weights changes the numbers.
    return random_albert(wordnet_glosses(1500), num_layers=2, num_groups=2)


def assert_features_equal(features, reference):
    length = features["sequence_output"].shape[1]
    np.testing.assert_array_equal(features["padding_mask"], reference["padding_mask"][:, :length])
    assert not reference["padding_mask"][:, length:].any()
    np.testing.assert_allclose(features["pooled_output"], reference["pooled_output"], atol=1e-5)
    np.testing.assert_allclose(
        features["sequence_output"], reference["sequence_output"][:, :length], atol=1e-5
    )


def test_hugging_face_directory_gives_the_backbones_features(albert, tmp_path):
    backbone, proto = albert
    directory = str(tmp_path / "hf")
    os.makedirs(directory)
    write_hf_checkpoint(backbone, AlbertTokenizer(proto=proto), SEQUENCE_LENGTH, directory)
    encoder = AlbertEncoder.from_preset(directory, sequence_length=SEQUENCE_LENGTH)
    reference = reference_features(backbone, proto, TEXTS, SEQUENCE_LENGTH)
    assert_features_equal(encoder(tf.constant(TEXTS)), reference)
    short = encoder(tf.constant(TEXTS[:3]))
    assert short["sequence_output"].shape[1] < SEQUENCE_LENGTH
    np.testing.assert_allclose(short["pooled_output"], reference["pooled_output"][:3], atol=1e-5)


def test_keras_hub_preset_directory_gives_the_backbones_features(albert, tmp_path):
    backbone, proto = albert
    directory = str(tmp_path / "preset")
    backbone.save_to_preset(directory)
    AlbertTokenizer(proto=proto).save_to_preset(directory)
    encoder = AlbertEncoder.from_preset(directory, sequence_length=SEQUENCE_LENGTH)
    reference = reference_features(backbone, proto, TEXTS, SEQUENCE_LENGTH)
    assert_features_equal(encoder(tf.constant(TEXTS)), reference)


def test_from_corpus_vocabulary_keeps_albert_special_pieces():
    encoder = AlbertEncoder.from_corpus(wordnet_glosses(300), vocabulary_size=200, sequence_length=16)
    tokenizer = encoder.tokenizer
    assert (tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id) == (0, 2, 3)
    assert tokenizer.token_to_id("[MASK]") == 4
    features = encoder(tf.constant(["a small dog", ""]))
    assert features["pooled_output"].shape == (2, 128)


BAD_INPUT = {
    "vocabulary of blank texts": (lambda: train_sentencepiece(["", "  "], 100), ValueError,
                                  "Cannot train a vocabulary on an empty corpus."),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])


@pytest.mark.parametrize("size, message", [(0, "vocabulary_size"), (2.5, "vocabulary_size"),
                                           (10, "vocabulary_size=10 is too small .* at least 20 pieces")])
def test_a_vocabulary_size_that_cannot_work_is_a_value_error_naming_it(size, message):
    # "a dog runs" + "the cat sleeps here": 14 distinct letters and the word boundary, plus 5 special pieces.
    with pytest.raises(ValueError, match=message):
        AlbertEncoder.from_corpus(["a dog runs", "the cat sleeps here"], vocabulary_size=size)
