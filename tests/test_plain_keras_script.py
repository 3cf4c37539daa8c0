"""The README's own-script example runs as written: trains on tokens, checkpoints, reloads, exports."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the TF Text ops the text signature uses

SCRIPT = Path(__file__).parents[1] / "examples" / "plain_keras_script.py"


@pytest.mark.slow
def test_plain_keras_script_runs_and_its_export_serves_the_checkpoint(tmp_path):
    finished = subprocess.run(
        [sys.executable, str(SCRIPT)], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "(2, 64)" in finished.stdout
    version_dir = tmp_path / "runs" / "example" / "serving" / "wordnet" / "1"
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    embeddings = serve(text=tf.constant(["a domestic dog", ""]))["embedding"].numpy()
    assert embeddings.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
