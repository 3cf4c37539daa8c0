"""TF Serving's versioned model directories (`base_dir/<version>/`), each written whole or not at all."""

import os
import re
import shutil
import tempfile

from keras_siamese.atomic import PARTIAL_MARK, fsync_path, fsync_tree, remove_abandoned_partials
from keras_siamese.checks import is_integer


def write_version(base_dir, version, write):
    """Runs `write(directory)` on a hidden partial directory in `base_dir`, then renames it to
    `base_dir/<version>` (the next version when None) and returns that path. A failure or a
    kill leaves no version behind; an existing version is never overwritten. Any format writer
    (the SavedModel today) writes its files into the directory it is given.

    Example:
    >>> write_version("serving/wordnet", None, lambda directory: model.export(directory))  # doctest: +SKIP
    'serving/wordnet/3'
    """
    os.makedirs(base_dir, exist_ok=True)
    remove_abandoned_partials(base_dir)
    version = next_version(base_dir) if version is None else version
    final_dir = os.path.join(base_dir, str(version))
    if os.path.exists(final_dir):
        raise FileExistsError(
            f"Version {version} already exists at {final_dir}; versions are never "
            "overwritten. Pass another version or leave it as None for the next one."
        )
    partial_dir = tempfile.mkdtemp(prefix=f"{PARTIAL_MARK}{os.getpid()}-{version}-", dir=base_dir)
    try:
        write(partial_dir)
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


def check_version(version, name="version"):
    """Raises `ValueError` unless `version` is an integer TF Serving can serve (0 to 2**63 - 1)."""
    if not is_integer(version) or not 0 <= version < 2**63:
        raise ValueError(f"{name} must be a non-negative integer that fits TF Serving's int64, got {version!r}.")
    return version


def _listdir(path):
    return os.listdir(path) if os.path.isdir(path) else []
