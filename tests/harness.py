"""Checks shared by the test modules.

- `run_layer_test`: what every serialisable layer promises (config round trip, the same numbers
  after saving inside a model, the dtype under mixed precision), written once instead of per layer.
- `run_task_test`: the same for an embedding model (`SentenceEmbedder` and its subclasses): texts
  in, the same embeddings after a config round trip and after a `.keras` file, one preprocessor
  object, float32 embeddings from a model built under mixed precision, and a `fit` step.
- `check_bad_input`: one bad-input case, `(call, error type, words of the message)`; each module's
  tests hold a `BAD_INPUT` table of them, run by a test named `test_bad_input_gets_a_clear_error`
  (`pytest -k test_bad_input_gets_a_clear_error` runs the whole catalogue). Command-line cases
  live in tests/test_cli.py (one argparse line, exit status 2); a damaged warmup file and a
  damaged SavedModel under the C++ serving check in tests/export/test_serving_check.py.
"""

import atexit
import json
import pathlib
import shutil
import tempfile

import keras
import numpy as np
import pytest


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    *,
    expected_output_shape=None,
    expected_num_trainable_weights=None,
    mixed_precision_output_dtype=None,
    rtol=1e-6,
    atol=1e-6,
):
    """Builds `layer_cls(**init_kwargs)`, calls it on `input_data` and checks that:

    1. its config survives `keras.layers.serialize`, JSON and `keras.layers.deserialize` unchanged,
       the copy has as many trainable weights and, given the original's weights, computes the
       same outputs;
    2. called on `keras.Input`s shaped like `input_data` (a batch of arrays, or a dict of them)
       its symbolic outputs have the eager outputs' dtypes and `expected_output_shape` (batch
       axis None) when given;
    3. a functional model around it, saved to `.keras` and loaded back without custom objects,
       computes the same outputs;
    4. with `mixed_precision_output_dtype` given (one dtype for every output, or a structure like
       the outputs'), `layer_cls(**init_kwargs, dtype="mixed_bfloat16")` keeps float32 weights and
       returns those dtypes, eagerly and symbolically.

    `expected_num_trainable_weights`, when given, is checked after the first call.
    Returns the layer's eager outputs.
    """
    layer = layer_cls(**init_kwargs)
    outputs = layer(input_data)
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights

    # 1. The config round trip, through JSON as in a .keras file.
    serialized = json.loads(json.dumps(keras.layers.serialize(layer)))
    clone = keras.layers.deserialize(serialized)
    assert type(clone) is layer_cls
    assert clone.get_config() == layer.get_config()
    clone(input_data)  # builds the copy's weights
    assert len(clone.trainable_weights) == len(layer.trainable_weights)
    clone.set_weights(layer.get_weights())
    _assert_outputs_equal(clone(input_data), outputs, rtol, atol)

    # 2. The symbolic call.
    inputs = _symbolic_inputs(input_data)
    symbolic = layer(inputs)
    assert _dtypes(symbolic) == _dtypes(outputs)
    if expected_output_shape is not None:
        assert keras.tree.map_structure(lambda tensor: tuple(tensor.shape), symbolic) == expected_output_shape

    # 3. Saved inside a model and loaded back.
    model = keras.Model(inputs, symbolic)
    with tempfile.TemporaryDirectory() as directory:
        path = pathlib.Path(directory) / "model.keras"
        model.save(path)
        reloaded = keras.saving.load_model(path)
    _assert_outputs_equal(reloaded(input_data), outputs, rtol, atol)

    # 4. Mixed precision.
    if mixed_precision_output_dtype is not None:
        mixed = layer_cls(**init_kwargs, dtype="mixed_bfloat16")
        mixed_outputs = mixed(input_data)
        assert all(weight.dtype == "float32" for weight in mixed.weights)
        want = mixed_precision_output_dtype
        if isinstance(want, str):
            want = keras.tree.map_structure(lambda _: mixed_precision_output_dtype, outputs)
        assert _dtypes(mixed_outputs) == want
        assert _dtypes(mixed(_symbolic_inputs(input_data))) == want
    return outputs


def run_task_test(build, texts, labels, *, atol=1e-6):
    """Builds `build()` (an uncompiled `SentenceEmbedder`) and checks that:

    1. `encode(texts)` gives one float32 row per text, in order (each text alone gives its row);
    2. its config survives JSON and `from_config` (same class; with the original's weights, the
       same embeddings);
    3. saved to `.keras` and loaded back, it is the same class with the same embeddings, and its
       preprocessor is the one object its encoder layer holds (if it has one);
    4. built under Keras' `mixed_bfloat16` policy, its weights stay float32 and its embeddings are
       float32;
    5. compiled with its default loss (or Adam and `TripletSemiHardLoss` for a model without
       one), one `fit` step on `(texts, labels)` gives a finite loss.
    Returns the model's embeddings of `texts`.
    """
    from keras_siamese.losses import TripletSemiHardLoss
    from keras_siamese.models import SentenceEmbedder
    from keras_siamese.precision import training_precision

    model = build()
    embeddings = model.encode(texts)
    assert embeddings.dtype == np.float32 and embeddings.shape[0] == len(texts)
    np.testing.assert_allclose(model.encode(texts[-1:]), embeddings[-1:], atol=max(atol, 1e-5))

    clone = type(model).from_config(json.loads(json.dumps(model.get_config())))
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.encode(texts), embeddings, atol=atol)

    with tempfile.TemporaryDirectory() as directory:
        path = pathlib.Path(directory) / "model.keras"
        model.save(path)
        reloaded = keras.saving.load_model(path)
    assert type(reloaded) is type(model)
    np.testing.assert_allclose(reloaded.encode(texts), embeddings, atol=atol)
    owners = [layer for layer in reloaded.layers if getattr(layer, "preprocessor", None) is not None]
    assert all(layer.preprocessor is reloaded.preprocessor for layer in owners)

    with training_precision("bfloat16"):
        mixed = build()
    assert all(weight.dtype == "float32" for weight in mixed.weights)
    assert mixed.encode(texts).dtype == np.float32

    has_default_loss = type(model).default_loss is not SentenceEmbedder.default_loss
    model.compile(optimizer="adam", loss=None if has_default_loss else TripletSemiHardLoss())
    history = model.fit(np.asarray(texts, dtype=object), np.asarray(labels), batch_size=len(texts), verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    return embeddings


def _symbolic_inputs(input_data):
    def symbolic(array, name=None):
        array = np.asarray(array)
        dtype = "string" if array.dtype.kind in "OSU" else array.dtype.name
        return keras.Input(shape=array.shape[1:], dtype=dtype, name=name)

    if isinstance(input_data, dict):
        return {name: symbolic(array, name) for name, array in input_data.items()}
    return symbolic(input_data)


def _dtypes(outputs):
    return keras.tree.map_structure(lambda tensor: keras.backend.standardize_dtype(tensor.dtype), outputs)


def _assert_outputs_equal(actual, expected, rtol, atol):
    assert keras.tree.flatten(_dtypes(actual)) == keras.tree.flatten(_dtypes(expected))
    for got, want in zip(keras.tree.flatten(actual), keras.tree.flatten(expected)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=rtol, atol=atol)


def check_bad_input(call, error_type, words):
    """`call()` raises `error_type` with `words` in its message."""
    with pytest.raises(error_type) as raised:
        call()
    assert words in str(raised.value), str(raised.value)


def scratch_dir():
    """A fresh temporary directory, removed at exit (for bad-input cases, plain lambdas without tmp_path)."""
    directory = tempfile.mkdtemp(prefix="bad_input_")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return pathlib.Path(directory)
