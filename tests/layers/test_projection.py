import numpy as np
import pytest

from keras_siamese.layers import Projection
from tests.harness import check_bad_input, run_layer_test


def test_is_dense_relu_then_dense():
    layer = Projection(output_units=3, hidden_units=(5,))
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    out = layer(x).numpy()
    (w1, b1), (w2, b2) = [d.get_weights() for d in (layer.hidden_layers[0], layer.output_layer)]
    expected = []
    for row in x:
        hidden = [max(0.0, sum(row[i] * w1[i, j] for i in range(6)) + b1[j]) for j in range(5)]
        expected.append([sum(hidden[j] * w2[j, k] for j in range(5)) + b2[k] for k in range(3)])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_layer_contract():
    x = np.random.default_rng(1).normal(size=(3, 5)).astype("float32")
    run_layer_test(
        Projection,
        {"output_units": 8, "hidden_units": (16, 12), "activation": "gelu", "dropout": 0.1},
        x,
        expected_output_shape=(None, 8),
        expected_num_trainable_weights=6,
        mixed_precision_output_dtype="float32",
    )


BAD_INPUT = {
    "Projection output_units 0": (lambda: Projection(output_units=0), ValueError,
                                  "output_units must be a positive integer, got 0"),
    "Projection hidden_units int": (lambda: Projection(hidden_units=64), ValueError,
                                    "must be a sequence of positive integers such as (64,), got 64"),
    "Projection dropout 1": (lambda: Projection(dropout=1.0), ValueError,
                             "dropout must be a number in [0, 1), got 1.0"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
