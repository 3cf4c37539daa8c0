"""HubEncoder runs TF Hub-format SavedModels of a random ALBERT: numbers, fine-tuning, export, errors."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.export import export_saved_model
from keras_siamese.layers import Pooling
from keras_siamese.layers.albert_encoder import AlbertEncoder
from keras_siamese.layers.hub_encoder import HubEncoder, HubPreprocessor
from keras_siamese.models import TripletSemiHard
from tests.layers.albert_checkpoints import random_albert, reference_features, wordnet_glosses, write_tfhub_albert

TEXTS = wordnet_glosses(12, offset=3000) + ["", "Ünïcödé naïve café ☃", "dog " * 80]
SEQUENCE_LENGTH = 48


@pytest.fixture(scope="module")
def hub_albert(tmp_path_factory):
    backbone, proto = random_albert(wordnet_glosses(1500), num_layers=2)
    root = tmp_path_factory.mktemp("tfhub")
    encoder_dir, preprocessor_dir = write_tfhub_albert(
        backbone, proto, str(root / "albert_en_base"), str(root / "albert_en_preprocess")
    )
    reference = reference_features(backbone, proto, TEXTS, SEQUENCE_LENGTH)
    return encoder_dir, preprocessor_dir, reference


def embedding_model(encoder):
    text = keras.Input(shape=(), dtype="string")
    return keras.Model(text, Pooling("mean")(encoder(text)))


@pytest.mark.parametrize("use_preprocessor", [True, False], ids=["preprocessor", "encoder_assets"])
def test_gives_the_backbones_features(hub_albert, use_preprocessor):
    encoder_dir, preprocessor_dir, reference = hub_albert
    encoder = AlbertEncoder.from_tfhub(
        encoder_dir, preprocessor_dir if use_preprocessor else None, sequence_length=SEQUENCE_LENGTH
    )
    features = encoder(tf.constant(TEXTS))
    length = features["sequence_output"].shape[1]
    np.testing.assert_array_equal(features["padding_mask"], reference["padding_mask"][:, :length])
    np.testing.assert_allclose(features["pooled_output"], reference["pooled_output"], atol=1e-5)
    np.testing.assert_allclose(
        features["sequence_output"], reference["sequence_output"][:, :length], atol=1e-5
    )
    assert encoder(tf.constant(TEXTS[:2]))["sequence_output"].shape[1] < SEQUENCE_LENGTH


@pytest.mark.parametrize("trainable", [True, False])
def test_fine_tuning_updates_the_savedmodels_weights(hub_albert, trainable):
    encoder_dir, preprocessor_dir, _ = hub_albert
    encoder = HubEncoder(encoder_dir, preprocessor_dir, sequence_length=32, trainable=trainable)
    model = embedding_model(encoder)
    before = model(tf.constant(TEXTS)).numpy()
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    model.fit(np.array(TEXTS, dtype=object), np.ones_like(before), batch_size=5, verbose=0)
    changed = not np.allclose(model(tf.constant(TEXTS)), before, atol=1e-4)
    assert changed == trainable
    assert (len(encoder.trainable_weights) > 0) == trainable


@pytest.mark.slow
def test_exported_model_runs_with_only_tensorflow_and_tf_text(hub_albert, tmp_path):
    encoder_dir, preprocessor_dir, _ = hub_albert
    model = embedding_model(HubEncoder(encoder_dir, preprocessor_dir, sequence_length=SEQUENCE_LENGTH))
    version_dir = export_saved_model(model, str(tmp_path / "serving"))
    output = str(tmp_path / "served.npy")
    script = (
        "import sys, numpy, tensorflow as tf, tensorflow_text\n"
        "serve = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "texts = tf.constant([line for line in sys.stdin.read().split('\\n')])\n"
        "numpy.save(sys.argv[2], serve(text=texts)['embedding'].numpy())\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, version_dir, output],
        input="\n".join(TEXTS).encode(), check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    np.testing.assert_allclose(np.load(output), model(tf.constant(TEXTS)), atol=1e-5)


def test_from_encoder_trains_the_token_model_on_texts_and_exports_it(hub_albert, tmp_path):
    encoder_dir, preprocessor_dir, _ = hub_albert
    encoder = HubEncoder(encoder_dir, preprocessor_dir, sequence_length=SEQUENCE_LENGTH)
    model = TripletSemiHard.from_encoder(encoder, pooling="mean", output_units=8)
    assert isinstance(model.preprocessor, HubPreprocessor)
    assert [tensor.dtype for tensor in model.inputs] == ["int32", "int32"]  # tokens, not strings
    texts, labels = TEXTS[:12], np.arange(12) // 4
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    before = model.predict(texts, verbose=0)
    model.fit(np.array(texts, dtype=object), labels, batch_size=12, epochs=2, verbose=0)
    after = model.predict(texts, verbose=0)
    assert not np.allclose(after, before, atol=1e-4)
    np.testing.assert_allclose(after, model(encoder.preprocessor(texts)), atol=1e-5)
    serve = tf.saved_model.load(export_saved_model(model, str(tmp_path / "serving"))).signatures["serving_default"]
    np.testing.assert_allclose(serve(text=tf.constant(texts))["embedding"], after, atol=1e-5)


@pytest.mark.slow
def test_the_main_job_fine_tunes_a_tfhub_savedmodel_given_as_encoder(hub_albert, tmp_path):
    """`keras-siamese train --encoder <TF Hub SavedModel directory>`: a HubEncoder, checkpointed, exported, checked."""
    encoder_dir, _, _ = hub_albert
    finished = subprocess.run(
        ["keras-siamese", "train", "--encoder", encoder_dir, "--output-dir", str(tmp_path / "run"), "--epochs", "1",
         "--steps-per-epoch", "3", "--sequence-length", "24", "--test-fraction", "0.02"],
        capture_output=True, text=True, timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["settings"]["output_units"] == 0  # a pretrained encoder: no random head
    reloaded = keras.saving.load_model(summary["best_checkpoint"], safe_mode=False)
    assert any(isinstance(layer, HubEncoder) for layer in reloaded.layers)
    served = tf.saved_model.load(summary["saved_model"]).signatures["serving_default"]
    texts = TEXTS[:4]
    np.testing.assert_allclose(
        served(text=tf.constant(texts))["embedding"].numpy(), reloaded.predict(texts, verbose=0), atol=1e-5
    )


def test_keras_file_round_trip_needs_unsafe_mode(hub_albert, tmp_path):
    encoder_dir, preprocessor_dir, _ = hub_albert
    model = embedding_model(HubEncoder(encoder_dir, preprocessor_dir, sequence_length=SEQUENCE_LENGTH))
    path = str(tmp_path / "hub.keras")
    model.save(path)
    with pytest.raises(ValueError, match="safe_mode=False"):
        keras.saving.load_model(path)
    reloaded = keras.saving.load_model(path, safe_mode=False)
    np.testing.assert_allclose(reloaded(tf.constant(TEXTS)), model(tf.constant(TEXTS)), atol=1e-6)


class _WrongInputs(tf.Module):
    @tf.function(input_signature=[{"ids": tf.TensorSpec([None, None], tf.int32)}])
    def __call__(self, inputs):
        return {"pooled_output": tf.cast(inputs["ids"], tf.float32)}


class _WrongOutputs(tf.Module):
    @tf.function
    def __call__(self, inputs, training=False):
        return {"embedding": tf.cast(inputs["input_word_ids"], tf.float32)}


def test_mismatched_savedmodels_are_refused_with_the_expected_signature(hub_albert, tmp_path):
    encoder_dir, preprocessor_dir, _ = hub_albert
    wrong_inputs = str(tmp_path / "wrong_inputs")
    tf.saved_model.save(_WrongInputs(), wrong_inputs)
    with pytest.raises(ValueError, match="input_word_ids"):
        HubEncoder(wrong_inputs, preprocessor_dir)
    wrong_outputs = str(tmp_path / "wrong_outputs")
    module = _WrongOutputs()
    spec = {n: tf.TensorSpec([None, None], tf.int32) for n in ("input_word_ids", "input_mask", "input_type_ids")}
    module.__call__.get_concrete_function(spec, training=False)
    tf.saved_model.save(module, wrong_outputs)
    with pytest.raises(ValueError, match="pooled_output"):
        HubEncoder(wrong_outputs, preprocessor_dir)
    with pytest.raises(ValueError, match="preprocessor"):
        HubEncoder(encoder_dir, preprocessor=wrong_outputs)


def _run_python(script, *args):
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def test_the_layers_do_not_import_tensorflow_hub():
    result = _run_python(
        "import sys, keras_siamese.layers, keras_siamese.models\n"
        "assert 'tensorflow_hub' not in sys.modules, 'tensorflow_hub was imported'\n"
    )
    assert result.returncode == 0, result.stderr


# Makes tensorflow_hub unimportable in the subprocess, as on a machine without the extra.
WITHOUT_TENSORFLOW_HUB = "import sys\nsys.modules['tensorflow_hub'] = None\n"


def test_without_tensorflow_hub_local_directories_load_and_handles_name_the_extra(hub_albert):
    encoder_dir, preprocessor_dir, _ = hub_albert
    result = _run_python(
        WITHOUT_TENSORFLOW_HUB
        + "import tensorflow as tf\nfrom keras_siamese.layers import AlbertEncoder\n"
        "encoder = AlbertEncoder.from_tfhub(sys.argv[1], sys.argv[2], sequence_length=16)\n"
        "print(tuple(encoder(tf.constant(['a small dog']))['pooled_output'].shape))\n"
        "try:\n"
        "    AlbertEncoder.from_tfhub('https://tfhub.dev/tensorflow/albert_en_base/3')\n"
        "except ImportError as error:\n"
        "    print('ImportError:', error)\n",
        encoder_dir, preprocessor_dir,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "(1, 32)"  # random_albert's hidden size
    assert "ImportError: 'https://tfhub.dev/tensorflow/albert_en_base/3' is not a local directory" in result.stdout
    assert 'pip install "keras-siamese[hub]"' in result.stdout


def test_handles_are_resolved_by_tensorflow_hub(hub_albert, monkeypatch):
    tensorflow_hub = pytest.importorskip("tensorflow_hub")
    encoder_dir, preprocessor_dir, _ = hub_albert
    handles = {"https://tfhub.dev/x/encoder/1": encoder_dir, "https://tfhub.dev/x/preprocess/1": preprocessor_dir}
    resolved = []
    monkeypatch.setattr(tensorflow_hub, "resolve", lambda handle: resolved.append(handle) or handles[handle])
    direct = HubEncoder(encoder_dir, preprocessor_dir, sequence_length=SEQUENCE_LENGTH)
    by_handle = HubEncoder(*handles, sequence_length=SEQUENCE_LENGTH)
    assert resolved == list(handles)
    np.testing.assert_allclose(
        by_handle(tf.constant(TEXTS))["pooled_output"], direct(tf.constant(TEXTS))["pooled_output"], atol=1e-6
    )
