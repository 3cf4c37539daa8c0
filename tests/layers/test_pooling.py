import math

import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.layers import Pooling
from tests.harness import check_bad_input, run_layer_test


def _features(seed=0):
    rng = np.random.default_rng(seed)
    lengths = [3, 5, 1]
    sequence = rng.normal(size=(3, 5, 4)).astype("float32")
    mask = np.array([[i < n for i in range(5)] for n in lengths])
    return {
        "sequence_output": tf.constant(sequence),
        "pooled_output": tf.constant(rng.normal(size=(3, 4)).astype("float32")),
        "padding_mask": tf.constant(mask),
    }, sequence, mask


def _reference(mode, sequence, mask, pooled):
    """Pooling written per text and per dimension from the definitions."""
    rows = []
    for text, text_mask, text_pooled in zip(sequence, mask, pooled):
        tokens = [text[t] for t in range(len(text)) if text_mask[t]]
        if mode == "pooled":
            rows.append(list(text_pooled))
        elif mode == "cls":
            rows.append(list(text[0]))
        elif mode == "mean":
            rows.append([sum(tok[d] for tok in tokens) / len(tokens) for d in range(text.shape[1])])
        elif mode == "mean_sqrt_len":
            rows.append([sum(tok[d] for tok in tokens) / math.sqrt(len(tokens)) for d in range(text.shape[1])])
        elif mode == "max":
            rows.append([max(tok[d] for tok in tokens) for d in range(text.shape[1])])
    return np.array(rows)


@pytest.mark.parametrize("mode", ["pooled", "cls", "mean", "max", "mean_sqrt_len"])
def test_matches_definition_and_ignores_padding(mode):
    features, sequence, mask = _features()
    expected = _reference(mode, sequence, mask, features["pooled_output"].numpy())
    np.testing.assert_allclose(Pooling(mode)(features).numpy(), expected, atol=1e-6)
    # Whatever sits under the padding must not matter.
    features["sequence_output"] = tf.where(mask[:, :, None], features["sequence_output"], 1e6)
    np.testing.assert_allclose(Pooling(mode)(features).numpy(), expected, atol=1e-6)


def test_layer_contract():
    features = {name: np.asarray(value) for name, value in _features()[0].items()}
    run_layer_test(Pooling, {"mode": "max", "name": "p"}, features, expected_output_shape=(None, 4),
                   mixed_precision_output_dtype="float32")


BAD_INPUT = {
    "Pooling unknown mode": (lambda: Pooling("avg"), ValueError,
                             "Unknown pooling mode 'avg'; expected one of"),
    "Pooling of a tensor": (lambda: Pooling("mean")(tf.ones([2, 3, 4])), ValueError,
                            "Pooling('mean') takes the encoder's features, a dict with"),
    "Pooling without padding_mask": (lambda: Pooling("max")({"sequence_output": tf.ones([2, 3, 4])}),
                                     ValueError, "'padding_mask']; got ['sequence_output']"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
