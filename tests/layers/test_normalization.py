import math

import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.layers import L2Normalize
from tests.harness import check_bad_input, run_layer_test


def test_unit_norm_matches_definition():
    x = np.random.default_rng(0).normal(size=(5, 7)).astype("float32")
    expected = [[v / math.sqrt(sum(u * u for u in row)) for v in row] for row in x]
    np.testing.assert_allclose(L2Normalize()(x).numpy(), expected, rtol=1e-6)


def test_zero_vector_stays_finite():
    out = L2Normalize()(np.zeros((2, 3), "float32")).numpy()
    np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "mixed_float16"])
def test_low_precision_inputs_give_float32_unit_vectors(dtype):
    layer = L2Normalize(dtype=dtype)
    # 300**2 + 400**2 overflows float16 (max 65504): the sum of squares must be taken in float32.
    out = layer(tf.constant([[300.0, 400.0]], dtype=dtype.removeprefix("mixed_")))
    assert out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), [[0.6, 0.8]], rtol=1e-6)


def test_axis_and_layer_contract():
    x = np.array([[3.0, 1.0], [4.0, 0.0]], "float32")
    out = run_layer_test(L2Normalize, {"axis": 0, "epsilon": 1e-6}, x, expected_output_shape=(None, 2),
                         mixed_precision_output_dtype="float32")
    np.testing.assert_allclose(out.numpy(), [[0.6, 1.0], [0.8, 0.0]], rtol=1e-6)


BAD_INPUT = {
    "L2Normalize epsilon 0": (lambda: L2Normalize(epsilon=0.0), ValueError,
                              "epsilon must be a finite number > 0, got 0.0"),
    "L2Normalize axis string": (lambda: L2Normalize(axis="last"), ValueError,
                                "axis must be an integer, got 'last'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
