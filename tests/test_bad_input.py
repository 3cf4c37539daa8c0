"""Bad-input cases of the models, training settings, export and the serving check: each names the
exception and the words of its message.

Every other module's cases sit beside its own tests, in a `BAD_INPUT` table run by a test of the
same name as the one here (`pytest -k test_bad_input_gets_a_clear_error` runs them all).
Command-line cases live in tests/test_cli.py (one argparse line, exit status 2); a damaged
warmup file and a damaged SavedModel under the C++ serving check in tests/export/test_serving_check.py.
"""

import functools
import types

import keras
import numpy as np
import pytest

from keras_siamese import inference
from keras_siamese.artifacts import UnreadableFileError
from keras_siamese.export import (
    ServingLoad,
    check_serving,
    check_serving_ops,
    export_saved_model,
    read_metadata,
)
from keras_siamese.models import TripletSemiHard, load_model, pair_model
from keras_siamese.settings import check_integers
from keras_siamese.sources import EncoderSource
from keras_siamese.training import TrainingConfig
from tests.harness import check_bad_input, scratch_dir

EYE = np.eye(2, dtype="float32")


def _dense_model(**kwargs):
    x = keras.Input((2,))
    return TripletSemiHard(inputs=x, outputs=keras.layers.Dense(2)(x), **kwargs)


@functools.cache
def _artefacts():
    """Saved artefacts (model, weights) and damaged copies of them, in one scratch directory."""
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
    _write(root / "graph" / "1" / "saved_model.pb", b"\x0a\xff\xff\xff")
    _write(root / "graph" / "1" / "assets.extra" / "keras_siamese.json", b'{"embedding_size": 6')
    _write(root / "empty_graph" / "1" / "saved_model.pb", b"")
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


CASES = {
    # models: margins and distances, arguments
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
    # encoding texts (keras_siamese.inference; to move beside tests/test_inference.py)
    "encode of numbers": (lambda: inference.encode(lambda t: t, [1, 2]), ValueError, "str or bytes"),
    "encode batch size 0": (lambda: inference.encode(lambda t: t, ["a"], batch_size=0),
                            ValueError, "batch_size must be a positive integer, got 0"),
    # training settings
    "config precision float64": (lambda: TrainingConfig(precision="float64").check(), ValueError,
                                 "precision must be one of ('float32', 'bfloat16', 'float16'), got 'float64'"),
    "config matmul precision": (lambda: TrainingConfig(matmul_precision="tf32").check(), ValueError,
                                "matmul_precision must be one of ('float32', 'bf16'), got 'tf32'"),
    "config epochs 0": (lambda: TrainingConfig(epochs=0).check(), ValueError,
                        "epochs must be a positive integer, got 0"),
    "config learning rate negative": (lambda: TrainingConfig(learning_rate=-1e-3).check(), ValueError,
                                      "learning_rate must be a finite positive number, got -0.001"),
    "config margin NaN": (lambda: TrainingConfig(margin=float("nan")).check(), ValueError,
                          "margin must be a finite number >= 0, got nan"),
    "config test_fraction 1": (lambda: TrainingConfig(test_fraction=1.0).check(), ValueError,
                               "test_fraction must be in (0, 1), got 1.0"),
    "config samples_per_class 1": (lambda: TrainingConfig(samples_per_class=1).check(), ValueError,
                                   "samples_per_class must be an integer >= 2, got 1"),
    "config steps_per_epoch bool": (lambda: TrainingConfig(steps_per_epoch=True).check(), ValueError,
                                    "steps_per_epoch must be a positive integer, got True"),
    "config sequence_length 2": (lambda: EncoderSource(sequence_length=2).check(), ValueError,
                                 "sequence_length must be at least 3 ([CLS], [SEP] and a token), got 2"),
    "config learning rate string": (lambda: TrainingConfig(learning_rate="1e-3").check(), ValueError,
                                    "learning_rate must be a finite positive number, got '1e-3'"),
    "config margin string": (lambda: TrainingConfig(margin="0.5").check(), ValueError,
                             "margin must be a finite number >= 0, got '0.5'"),
    "config test_fraction string": (lambda: TrainingConfig(test_fraction="0.1").check(), ValueError,
                                    "test_fraction must be in (0, 1), got '0.1'"),
    "config pooling unknown": (lambda: TrainingConfig(pooling="avg").check(), ValueError,
                               "pooling must be one of ('pooled', 'cls', 'mean', 'max', 'mean_sqrt_len'), got 'avg'"),
    "config seed negative": (lambda: TrainingConfig(seed=-1).check(), ValueError, "seed must be a non-negative integer, got -1"),
    "settings integer below minimum": (lambda: check_integers(types.SimpleNamespace(units=1), ["units"], 2),
                                       ValueError, "units must be an integer >= 2, got 1"),
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
    "saved_model.pb corrupt": (lambda: check_serving_ops(_file("graph/1")), UnreadableFileError,
                               "saved_model.pb is not a readable SavedModel graph (saved_model.pb): Error parsing"),
    "saved_model.pb empty": (lambda: check_serving_ops(_file("empty_graph/1")), UnreadableFileError,
                             "saved_model.pb is not a readable SavedModel graph (saved_model.pb): it is empty"),
    "metadata truncated": (lambda: read_metadata(_file("graph/1")), UnreadableFileError,
                           "keras_siamese.json is not a readable metadata file"),
    "no SavedModel to check": (lambda: check_serving(_artefacts()), ValueError, "is not a SavedModel directory"),
    # serving check
    "ServingLoad of 0 threads": (lambda: ServingLoad(threads=0), ValueError,
                                 "ServingLoad.threads must be a positive integer, got 0"),
    "ServingLoad tolerance": (lambda: ServingLoad(tolerance=-1e-5), ValueError, "tolerance must be a number >= 0"),
    "load that is not a ServingLoad": (lambda: check_serving(_file("graph/1"), load=8), ValueError,
                                       "load must be a ServingLoad or None, got 8"),
    # export
    "text export of a float model": (lambda: export_saved_model(_dense_model(), scratch_dir()), ValueError,
                                     "takes float32 (None, 2) and has no preprocessor"),
    "token export of a float model": (lambda: export_saved_model(_dense_model(), scratch_dir(), signatures="tokens"),
                                      ValueError, "The token signature needs a token-level model with a preprocessor"),
    "unknown signature kind": (lambda: export_saved_model(_dense_model(), scratch_dir(), signatures=("ids",)),
                               ValueError, "signatures must name one or both of"),
    "warmup without the text signature": (lambda: export_saved_model(
        _dense_model(), scratch_dir(), signatures="tokens", warmup_texts=["a"]), ValueError,
        "warmup_texts needs the text signature"),
    "export computing in int8": (lambda: export_saved_model(_dense_model(), scratch_dir(), compute_dtype="int8"),
                                 ValueError, "compute_dtype must be one of ('float32', 'bfloat16', 'float16'), got 'int8'"),
    "export version negative": (lambda: export_saved_model(_dense_model(), "/tmp/never", version=-1),
                                ValueError, "version must be a non-negative integer that fits TF Serving's int64, got -1"),
    "export version beyond int64": (lambda: export_saved_model(_dense_model(), "/tmp/never", version=2**63),
                                    ValueError, "fits TF Serving's int64, got 9223372036854775808"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*CASES[case])
