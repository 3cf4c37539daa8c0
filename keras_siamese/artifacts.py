"""Reading saved artefacts: a file that cannot be read is one error naming it and what is wrong.

`keras_siamese.atomic` writes every artefact whole or not at all; a file can
still arrive truncated or corrupt (a full disk, a bad copy, a download cut
short). Readers wrap the library call in `reading`, so the user sees
`UnreadableFileError: PATH is not a readable KIND: REASON` instead of an h5py,
zipfile or protobuf traceback.
"""

import contextlib
import json
import os
import zipfile


class UnreadableFileError(ValueError):
    """A file exists but is not a readable artefact of the kind expected.

    Example:
    >>> raise UnreadableFileError("model.keras", ".keras model", "it is empty (0 bytes)")
    Traceback (most recent call last):
    ...
    keras_siamese.artifacts.UnreadableFileError: model.keras is not a readable .keras model: it is empty (0 bytes).
    """

    def __init__(self, path, kind, reason):
        self.path = os.fspath(path)
        self.kind = kind
        self.reason = reason
        super().__init__(f"{self.path} is not a readable {kind}: {reason}.")


def is_local_path(path):
    """Whether `path` names a local file (not a `gs://`, `hdfs://`, ... URL that Keras or TF reads)."""
    return isinstance(path, (str, os.PathLike)) and "://" not in os.fspath(path)


@contextlib.contextmanager
def reading(path, kind):
    """Checks that `path` is a non-empty file, then turns read failures into `UnreadableFileError`.

    A missing file stays a `FileNotFoundError` (a permission problem a
    `PermissionError`: both say what is wrong); a URL is not checked beforehand. Inside the block, an `OSError`
    (h5py's truncated or foreign files), a `zipfile.BadZipFile`, an `EOFError`,
    a JSON or UTF-8 decoding error or a protobuf `DecodeError` becomes an `UnreadableFileError` whose reason is
    the library's own first line.

    Example:
    >>> with reading("index.npz", "keras_siamese index (.npz)"):  # doctest: +SKIP
    ...     data = np.load("index.npz")
    """
    from google.protobuf.message import DecodeError

    if is_local_path(path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{os.fspath(path)}: no such file.")
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise UnreadableFileError(path, kind, "it is empty (0 bytes)")
    try:
        yield path
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, DecodeError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UnreadableFileError(path, kind, f"{reason} (truncated or corrupt?)") from error


def check_zip_archive(path):
    """Raises `zipfile.BadZipFile` unless `path` is a complete zip archive (.keras, .npz);
    inside `reading`, that is an `UnreadableFileError`. A URL is left to its reader."""
    if not is_local_path(path):
        return
    with zipfile.ZipFile(path) as archive:
        damaged = archive.testzip()
    if damaged is not None:
        raise zipfile.BadZipFile(f"member {damaged} fails its CRC check")
