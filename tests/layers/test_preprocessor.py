"""TextPreprocessor: packing equal to a per-text loop, bucket trimming, input kinds, lengths, config."""

import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.layers import TextPreprocessor, token_inputs
from keras_siamese.layers.preprocessor import as_text_batch, preprocess_batches, text_input_prefix
from tests.harness import check_bad_input, run_layer_test

WORDS = "a dog cat barked at the small large red house tree of in on".split()
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
RNG = np.random.default_rng(3)
TEXTS = [" ".join(RNG.choice(WORDS, size=RNG.integers(0, 40))) for _ in range(30)] + ["", "dog ünknown"]


@pytest.fixture(scope="module")
def tokenizer():
    return keras_hub.models.BertTokenizer(vocabulary=VOCABULARY)


def packed_by_loop(tokenizer, texts, sequence_length, buckets):
    """[CLS] ids [SEP], truncated, padded to the smallest bucket holding the longest text."""
    cls, sep = VOCABULARY.index("[CLS]"), VOCABULARY.index("[SEP]")
    rows = [[cls] + list(np.asarray(tokenizer(tf.constant([t]))[0]))[: sequence_length - 2] + [sep] for t in texts]
    length = min(b for b in buckets if b >= max(len(row) for row in rows))
    ids = np.zeros((len(rows), length), np.int32)
    mask = np.zeros((len(rows), length), np.int32)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = row, 1
    return ids, mask


@pytest.mark.parametrize("count", [1, 5, len(TEXTS)])
def test_tokens_equal_a_loop_over_the_texts(tokenizer, count):
    preprocessor = TextPreprocessor(tokenizer, sequence_length=24, length_buckets=[8, 16])
    tokens = preprocessor(TEXTS[:count])
    want_ids, want_mask = packed_by_loop(tokenizer, TEXTS[:count], 24, (8, 16, 24))
    np.testing.assert_array_equal(tokens["token_ids"], want_ids)
    np.testing.assert_array_equal(tokens["padding_mask"], want_mask)
    assert tokens["token_ids"].dtype == tf.int32 and tokens["padding_mask"].dtype == tf.int32
    np.testing.assert_array_equal(preprocessor.token_lengths(TEXTS[:count]), want_mask.sum(axis=1))


def test_every_kind_of_text_input_gives_the_same_tokens(tokenizer):
    preprocessor = TextPreprocessor(tokenizer, sequence_length=32)
    want = preprocessor(tf.constant(TEXTS))["token_ids"].numpy()
    for texts in (TEXTS, tuple(TEXTS), np.array(TEXTS, dtype=object), np.array(TEXTS), [t.encode() for t in TEXTS]):
        np.testing.assert_array_equal(preprocessor(texts)["token_ids"], want)
    # Invalid UTF-8 is replaced, not an error; a single string is a batch of one.
    assert preprocessor([b"dog \xff\xfe cat"])["token_ids"].shape[0] == 1
    np.testing.assert_array_equal(preprocessor("a dog")["token_ids"], preprocessor(["a dog"])["token_ids"])


def test_fixed_length_and_layer_contract(tokenizer):
    init_kwargs = {"tokenizer": tokenizer, "sequence_length": 20, "dynamic_length": False}
    fixed = {"token_ids": (None, 20), "padding_mask": (None, 20)}
    tokens = run_layer_test(TextPreprocessor, init_kwargs, np.array(TEXTS), expected_output_shape=fixed,
                            mixed_precision_output_dtype="int32")
    assert tokens["token_ids"].shape == (len(TEXTS), 20)


def test_batches_of_several_texts_per_row_are_keyed_by_the_text_input_prefix(tokenizer):
    preprocessor = TextPreprocessor(tokenizer, sequence_length=16)
    pairs = tf.data.Dataset.from_tensor_slices(((TEXTS[:4], TEXTS[4:8]), [1.0, 0.0, 1.0, 0.0])).batch(4)
    tokens, labels = next(iter(preprocess_batches(pairs, preprocessor)))
    assert sorted(tokens) == sorted(text_input_prefix(i) + key for i in (0, 1) for key in token_inputs())
    np.testing.assert_array_equal(tokens["text_1_token_ids"], preprocessor(TEXTS[4:8])["token_ids"])
    np.testing.assert_array_equal(labels, [1.0, 0.0, 1.0, 0.0])


def test_batches_of_tokens_pass_through_unchanged(tokenizer):
    preprocessor = TextPreprocessor(tokenizer, sequence_length=16)
    tokens = preprocessor(TEXTS[:4])
    batches = tf.data.Dataset.from_tensors((tokens, [0, 0, 1, 1]))
    passed, labels = next(iter(preprocess_batches(batches, preprocessor)))
    for key in tokens:
        np.testing.assert_array_equal(passed[key], tokens[key])
    np.testing.assert_array_equal(labels, [0, 0, 1, 1])


BAD_INPUT = {
    "texts of rank 2 (tensor)": (lambda: as_text_batch(tf.constant([["a", "b"], ["c", "d"]])),
                                 ValueError, "Texts must be a flat batch (rank 1), got shape (2, 2)"),
    "texts of rank 2 (numpy)": (lambda: as_text_batch(np.array([["a"], ["b"]], object)),
                                ValueError, "got an array of shape (2, 1)"),
    "texts that are numbers": (lambda: as_text_batch(tf.constant([1, 2])),
                               ValueError, "Texts must be strings (tf.string), got dtype int32"),
    "TextPreprocessor sequence_length 2": (lambda: TextPreprocessor(None, sequence_length=2), ValueError,
                                           "must be an integer leaving room for [CLS], [SEP]"),
    "length_buckets beyond sequence_length": (lambda: TextPreprocessor(None, 8, length_buckets=[4, 16]),
                                              ValueError, "no larger than sequence_length=8, got [4, 16]"),
    "length_buckets a number": (lambda: TextPreprocessor(None, 8, length_buckets=4), ValueError,
                                "length_buckets must be a list of integer lengths, got 4"),
    "length_buckets of words": (lambda: TextPreprocessor(None, 8, length_buckets=["a"]), ValueError,
                                "length_buckets must be a list of integer lengths, got ['a']"),
    "tokenizer without special tokens": (lambda: TextPreprocessor(object(), 8), ValueError,
                                         "object defines none of ('cls_token_id', 'start_token_id')"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
