"""SavedModel export in TensorFlow Serving's layout, written atomically."""

import os
import re
import shutil
import tempfile

import keras
import tensorflow as tf

from keras_siamese.atomic import fsync_path, fsync_tree

SIGNATURE_NAME = "serving_default"
INPUT_NAME = "text"
OUTPUT_NAME = "embedding"
_PARTIAL_PREFIX = ".partial-"


def export_saved_model(model, base_dir, version=None):
    """Exports `model` (strings -> embeddings) as `base_dir/<version>/` for TF Serving.

    The SavedModel's `serving_default` signature takes `text`, a `[batch]`
    tf.string tensor, and returns `embedding`, float32 `[batch, dim]`. The
    version directory is written under a hidden temporary name inside
    `base_dir` and renamed into place only when complete, so a server watching
    `base_dir` never loads a half-written version and earlier versions are
    never touched. Leftovers of exports that were killed are removed by the
    next export.

    Args:
        model: a Keras model mapping a `[batch]` string tensor to embeddings.
        base_dir: the model's base path (TF Serving's `base_path`).
        version: integer version; by default one more than the largest
            existing version (1 for an empty `base_dir`). An existing version
            is never overwritten.

    Returns:
        The path of the new version directory.

    Example:
    >>> path = export_saved_model(model, "serving/wordnet")  # doctest: +SKIP
    >>> tf.saved_model.load(path).signatures["serving_default"](
    ...     text=tf.constant(["a small dog"]))["embedding"]  # doctest: +SKIP
    """
    base_dir = os.fspath(base_dir)
    os.makedirs(base_dir, exist_ok=True)
    _remove_abandoned_partials(base_dir)
    version = next_version(base_dir) if version is None else _check_version(version)
    final_dir = os.path.join(base_dir, str(version))
    if os.path.exists(final_dir):
        raise FileExistsError(
            f"Version {version} already exists at {final_dir}; versions are never "
            "overwritten. Pass another version or leave it as None for the next one."
        )
    partial_dir = tempfile.mkdtemp(
        prefix=f"{_PARTIAL_PREFIX}{os.getpid()}-{version}-", dir=base_dir
    )
    try:
        _export_archive(model).write_out(partial_dir, verbose=False)
        fsync_tree(partial_dir)
        os.rename(partial_dir, final_dir)
        fsync_path(base_dir)
    except BaseException:
        shutil.rmtree(partial_dir, ignore_errors=True)
        raise
    return final_dir


def next_version(base_dir):
    """One more than the largest integer version directory in `base_dir` (1 if none)."""
    versions = [int(name) for name in _listdir(base_dir) if re.fullmatch(r"\d+", name)]
    return max(versions, default=0) + 1


def _export_archive(model):
    archive = keras.export.ExportArchive()
    archive.track(model)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)])
    def serve(text):
        embedding = model(text, training=False)
        return {OUTPUT_NAME: tf.cast(embedding, tf.float32)}

    archive.add_endpoint(SIGNATURE_NAME, serve)
    return archive


def _check_version(version):
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"version must be a non-negative integer, got {version!r}.")
    return version


def _remove_abandoned_partials(base_dir):
    """Deletes temporary export directories whose writing process is gone."""
    for name in _listdir(base_dir):
        match = re.fullmatch(re.escape(_PARTIAL_PREFIX) + r"(\d+)-\d+-.*", name)
        if match and not _process_alive(int(match.group(1))):
            shutil.rmtree(os.path.join(base_dir, name), ignore_errors=True)


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _listdir(path):
    return os.listdir(path) if os.path.isdir(path) else []
