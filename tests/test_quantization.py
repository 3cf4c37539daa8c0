import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese import quantization
from keras_siamese.cli import main
from keras_siamese.export import check_serving, export_saved_model, read_metadata
from keras_siamese.layers.fusion import set_fused_graph
from keras_siamese.models import TripletSemiHard
from keras_siamese.quantization import (
    Int8UnavailableError,
    calibrate_int8,
    check_int8_kernel,
    int8_matmuls,
    quantize_weights,
)
from tests.harness import check_bad_input

PROBE_TEXTS = ["a domestic dog", "", "to move very fast", "狗 🐕 chien", "word " * 300]


def int8_oracle(x, kernel, bias, limit, activation=None, smoothing=None):
    """The int8 product from its definition, in plain integers: x (divided by the smoothing)
    rounded (half to even) to 127 steps of `limit / 127` each side and clipped, the weights
    (times the smoothing) to 63 steps of their column's largest magnitude, the integer dot
    products scaled back, plus the bias."""
    if smoothing is not None:
        x, kernel = x / smoothing, kernel * smoothing[:, None]
    x_steps = np.clip(np.round(x / (limit / 127)), -127, 127).astype(np.int64)  # np.round: half to even
    column_max = np.abs(kernel).max(axis=0)
    w_steps = np.clip(np.round(kernel / column_max * 63), -63, 63).astype(np.int64)
    out = np.zeros((x.shape[0], kernel.shape[1]))
    for i in range(x.shape[0]):
        for j in range(kernel.shape[1]):
            out[i, j] = sum(int(x_steps[i, k]) * int(w_steps[k, j]) for k in range(kernel.shape[0]))
    out = out * (limit / 127) * (column_max / 63) + bias
    if activation == "gelu":
        out = 0.5 * out * (1 + np.tanh(np.sqrt(2 / np.pi) * (out + 0.044715 * out**3)))
    return out


@pytest.mark.parametrize("activation, smoothed", [(None, False), ("gelu", False), (None, True)])
def test_one_int8_product_equals_the_integer_oracle(activation, smoothed):
    rng = np.random.default_rng(0)
    x = rng.standard_normal([6, 20]).astype(np.float32) * 2
    kernel = rng.standard_normal([20, 5]).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    limit = 3.0  # clips the larger inputs
    smoothing = rng.uniform(0.5, 2.0, 20).astype(np.float32) if smoothed else None
    weights = quantize_weights(kernel if smoothing is None else kernel * smoothing[:, None])
    form = quantization._int8_form(quantization.Int8Product(limit, smoothing, *weights, 0.0, 0.0))
    keras_activation = (lambda v: keras.activations.gelu(v, approximate=True)) if activation else None
    got = tf.function(lambda x: form(x, None, tf.constant(bias), keras_activation))(tf.constant(x)).numpy()
    np.testing.assert_allclose(got, int8_oracle(x, kernel, bias, limit, activation, smoothing), rtol=1e-4, atol=1e-4)


def test_fused_activations_are_recognised_by_what_they_compute():
    name = quantization._fused_activation_name
    assert name(lambda v: keras.activations.gelu(v, approximate=True)) == "GeluApproximate"
    assert name(keras.activations.gelu) == "GeluExact"
    assert name(keras.activations.relu) == "Relu"
    assert name(keras.activations.tanh) == "Tanh"
    assert name(None) is None and name(keras.activations.linear) is None
    assert name(lambda v: v * 2.0) is None  # not fusible: applied after the product


@pytest.fixture(scope="module")
def model(tiny_encoder_factory):
    keras.utils.set_random_seed(0)
    return TripletSemiHard.from_encoder(tiny_encoder_factory(), pooling="mean", output_units=8)


def test_int8_export_serves_near_float32_in_a_fresh_process_and_through_the_cpp_loader(model, glosses, tmp_path):
    calibration_texts = glosses[0][:200]
    version_dir = export_saved_model(model, tmp_path / "m", compute_dtype="int8", calibration_texts=calibration_texts,
                                     warmup_texts=PROBE_TEXTS[:2])
    facts = read_metadata(version_dir)
    assert facts["compute_dtype"] == "int8" and facts["tensorflow_version"] == tf.__version__
    int8 = facts["int8"]
    assert int8["op"] == "_QuantizedMatMul" and int8["calibration_texts"] == 100 and int8["held_out_texts"] == 100
    # ALBERT: the embedding projection and the shared layer's 4 attention and 2 feed-forward products.
    assert int8["int8_matmuls"] + len(int8["float32_matmuls"]) == 7 and int8["int8_matmuls"] >= 1
    assert int8["min_cosine_to_float32"] >= 0.99
    texts = glosses[0][1000:1100] + PROBE_TEXTS
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    reload = ("import json, sys, numpy as np, tensorflow as tf, tensorflow_text\n"
              "serve = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
              "np.save(sys.argv[3], serve(text=tf.constant(json.load(open(sys.argv[2]))))['embedding'].numpy())\n")
    subprocess.run([sys.executable, "-c", reload, version_dir, str(tmp_path / "texts.json"), str(tmp_path / "out.npy")],
                   check=True)
    served = np.load(tmp_path / "out.npy")
    expected = model.predict(texts, verbose=0)
    cosines = np.sum(served * expected, axis=1)
    assert cosines.min() >= 0.97 and cosines.mean() >= 0.99, (cosines.min(), cosines.mean())
    assert np.abs(served - expected).max() > 1e-6  # int8, not the float32 graph
    if os.environ.get("CXX") or any(os.access(os.path.join(p, "g++"), os.X_OK) for p in os.environ["PATH"].split(":")):
        report = check_serving(version_dir, texts[:20])
        assert report.fused_ops.get("_QuantizedMatMul", 0) >= int8["int8_matmuls"]
        print(report.executed_ops)
        # The shared layer runs twice; its query, key and value share one quantisation of their input.
        quantizations = report.executed_ops.get("_MklQuantizeV2", 0) + report.executed_ops.get("QuantizeV2", 0)
        assert 0 < quantizations <= report.fused_ops["_QuantizedMatMul"] - 4
        np.testing.assert_allclose(report.embeddings, served[:20], atol=1e-5)


def test_calibration_keeps_the_worst_products_in_float32_to_meet_the_cosine_asked(model, glosses):
    strict = calibrate_int8(model, glosses[0][:80], min_cosine=0.9999)
    loose = calibrate_int8(model, glosses[0][:80], min_cosine=-1.0)
    assert loose.in_float == () and len(loose.products) == 7
    assert strict.min_cosine >= 0.9999 or len(strict.in_float) == 7
    assert len(strict.in_float) > 0 and set(strict.in_float).isdisjoint(strict.products)
    errors = {path: product.error for path, product in loose.products.items()}
    assert set(strict.in_float) == set(sorted(errors, key=errors.get, reverse=True)[: len(strict.in_float)])


def test_each_product_takes_the_candidate_form_that_errs_least():
    rng = np.random.default_rng(1)
    rows = rng.standard_normal([256, 16]).astype(np.float32)
    rows[:, 3] *= 40  # an outlier channel, as after BERT's layer norms
    kernel = rng.standard_normal([16, 8]).astype(np.float32)
    product = quantization._best_product(rows, np.abs(rows).max(axis=0), kernel)
    exact = rows @ kernel
    for strength in quantization.SMOOTHING_STRENGTHS:  # the oracle: every candidate, from the definition
        smoothing = quantization._smoothing(np.abs(rows).max(axis=0), kernel, strength) if strength else np.ones(16)
        weights, ranges = quantize_weights(kernel * smoothing[:, None])
        scaled = rows / smoothing
        for percentile in quantization.CLIP_PERCENTILES:
            limit = min(np.abs(scaled).max(), np.percentile(np.abs(scaled), percentile))
            step = limit / 127
            approx = np.clip(np.round(scaled / step), -127, 127) * step @ (weights * ranges / 127)
            assert product.error <= np.linalg.norm(approx - exact) / np.linalg.norm(exact) + 1e-6
    assert product.smoothing is not None  # the outlier channel is smoothed away


BAD_INPUT = [
    (lambda m: export_saved_model(m, "unused", compute_dtype="int8"), ValueError, "calibration_texts"),
    (lambda m: export_saved_model(m, "unused", calibration_texts=["a dog"]), ValueError, "calibration_texts"),
    (lambda m: export_saved_model(m, "unused", compute_dtype="int4"), ValueError, "int8"),
    (lambda m: calibrate_int8(m, "a dog and a cat"), ValueError, "list of str"),
    (lambda m: calibrate_int8(m, ["a dog", None, "a cat"]), ValueError, "calibration text 1"),
    (lambda m: calibrate_int8(m, ["a dog", "  "]), ValueError, "calibration text 1"),
    (lambda m: calibrate_int8(m, ["a dog"]), ValueError, "at least 2"),
    (lambda m: calibrate_int8(m, ["a dog", "a cat"], min_cosine=2), ValueError, "min_cosine"),
    (lambda m: calibrate_int8(keras.Sequential([keras.layers.Dense(2)]), ["a", "b"]), ValueError, "preprocessor"),
]


@pytest.mark.parametrize("call, error, words", BAD_INPUT)
def test_bad_int8_input_is_one_clear_error(model, call, error, words):
    check_bad_input(lambda: call(model), error, words)


def test_int8_needs_the_fused_graph(tiny_encoder_factory):
    set_fused_graph(False)
    try:
        unfused = TripletSemiHard.from_encoder(tiny_encoder_factory(), pooling="mean")
        check_bad_input(lambda: calibrate_int8(unfused, ["a dog", "a cat"]), ValueError, "KERAS_SIAMESE_FUSED_GRAPH")
    finally:
        set_fused_graph(True)


def test_a_tensorflow_without_the_int8_kernel_is_refused_in_one_line(monkeypatch):
    check_int8_kernel.cache_clear()

    def missing(inputs, fused_ops):  # what importing an op TensorFlow does not register raises (TF 2.21's words)
        raise tf.errors.NotFoundError(None, None, "Op type not registered '_QuantizedMatMul' in binary running on vm.")

    monkeypatch.setattr(quantization, "_quantized_matmul", missing)
    try:
        with pytest.raises(Int8UnavailableError, match="no _QuantizedMatMul op .* checked on TensorFlow 2.21") as raised:
            check_int8_kernel()
        assert "\n" not in str(raised.value)
    finally:
        check_int8_kernel.cache_clear()


def test_calibration_for_another_model_is_refused(model, tiny_encoder_factory, glosses):
    calibration = calibrate_int8(model, glosses[0][:40], min_cosine=-1.0)
    other = TripletSemiHard.from_encoder(tiny_encoder_factory(), pooling="mean")
    with pytest.raises(ValueError, match="measured on other weights"):
        with int8_matmuls(other, calibration):
            pass


def test_cli_export_int8_needs_calibration_texts_and_writes_an_int8_version(model, glosses, tmp_path, capsys):
    model.save(tmp_path / "model.keras")
    with pytest.raises(SystemExit) as exited:
        main(["export", "--model", str(tmp_path / "model.keras"), "--out", str(tmp_path / "s"), "--precision", "int8"])
    assert exited.value.code == 2 and "--calibration-texts" in capsys.readouterr().err
    (tmp_path / "texts.txt").write_text("\n".join(glosses[0][:60]))
    status = main(["export", "--model", str(tmp_path / "model.keras"), "--out", str(tmp_path / "s"),
                   "--precision", "int8", "--calibration-texts", str(tmp_path / "texts.txt")])
    assert status == 0
    assert read_metadata(tmp_path / "s" / "1")["compute_dtype"] == "int8"
    assert not os.path.exists(tmp_path / "s" / "2")
