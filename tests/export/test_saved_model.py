import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_siamese.export import export_saved_model, next_version, saved_model
from keras_siamese.models import TripletSemiHard

PROBE_TEXTS = [
    "a domestic dog",
    "",
    "   ",
    "to move very fast",
    "狗 🐕 chien",
    "word " * 300,
]

RELOAD_IN_FRESH_PROCESS = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the SentencePiece ops
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
texts = json.load(open(sys.argv[2]))
out = serve(text=tf.constant(texts + [b"\\xff\\xfe not utf-8"]))
assert set(out) == {"embedding"}, out.keys()
assert not any(m.startswith("keras_siamese") for m in sys.modules)
np.save(sys.argv[3], out["embedding"].numpy())
"""


@pytest.fixture(scope="module")
def model(tiny_encoder_factory):
    keras.utils.set_random_seed(0)
    return TripletSemiHard.from_encoder(tiny_encoder_factory(), pooling="mean", output_units=8)


def test_fresh_process_reload_equals_predict(model, tmp_path):
    version_dir = export_saved_model(model, tmp_path / "serving" / "demo")
    assert version_dir == str(tmp_path / "serving" / "demo" / "1")
    (tmp_path / "texts.json").write_text(json.dumps(PROBE_TEXTS))
    subprocess.run(
        [sys.executable, "-c", RELOAD_IN_FRESH_PROCESS, version_dir,
         str(tmp_path / "texts.json"), str(tmp_path / "out.npy")],
        check=True,
    )
    served = np.load(tmp_path / "out.npy")
    expected = model.predict(PROBE_TEXTS, verbose=0)
    assert served.shape == (len(PROBE_TEXTS) + 1, 8) and served.dtype == np.float32
    np.testing.assert_allclose(served[:-1], expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)


def test_versions_count_up_and_are_never_overwritten(model, tmp_path):
    base = tmp_path / "m"
    assert next_version(base) == 1
    os.makedirs(base / "7")
    os.makedirs(base / "not-a-version")
    assert export_saved_model(model, base).endswith(os.sep + "8")
    with pytest.raises(FileExistsError, match="Version 7 already exists"):
        export_saved_model(model, base, version=7)
    with pytest.raises(ValueError, match="non-negative integer"):
        export_saved_model(model, base, version="9")
    assert sorted(os.listdir(base)) == ["7", "8", "not-a-version"]


def test_failed_export_leaves_no_version_and_old_leftovers_are_cleaned(model, tmp_path, monkeypatch):
    base = tmp_path / "m"
    export_saved_model(model, base)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    os.makedirs(base / f".partial-{dead.pid}-2-abc")

    class CrashingArchive:
        def write_out(self, directory, **kwargs):
            with open(os.path.join(directory, "saved_model.pb"), "wb") as f:
                f.write(b"half a graph")
            raise KeyboardInterrupt

    monkeypatch.setattr(saved_model, "_export_archive", lambda model: CrashingArchive())
    with pytest.raises(KeyboardInterrupt):
        export_saved_model(model, base)
    assert sorted(os.listdir(base)) == ["1"]
