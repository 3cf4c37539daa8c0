"""Atomic writes: a file or directory appears complete or not at all."""

import contextlib
import os
import shutil
import tempfile

PARTIAL_MARK = ".partial-"


@contextlib.contextmanager
def atomic_file_path(path):
    """Yields a temporary path beside `path`; renames it over `path` on success.

    The temporary name keeps `path`'s extensions (Keras picks the format from
    them) and is removed if writing fails, so the previous `path` survives a
    crash or an interrupt intact. A process killed mid-write (kill -9) leaves
    its hidden partial behind; the next successful write in that directory
    removes the partials of processes that are gone.

    Example:
    >>> with atomic_file_path("model.keras") as tmp:  # doctest: +SKIP
    ...     model.save(tmp)
    """
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    # Keep the last two extensions: Keras reads ".keras" and ".weights.h5".
    suffix = "".join("." + part for part in name.split(".")[1:][-2:])
    fd, tmp = tempfile.mkstemp(prefix=f".{name}{PARTIAL_MARK}{os.getpid()}-", suffix=suffix, dir=directory)
    os.close(fd)
    os.remove(tmp)  # writers such as h5py want to create the file themselves
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(directory)
        remove_abandoned_partials(directory)
    finally:
        _remove(tmp)


def remove_abandoned_partials(directory):
    """Removes the hidden partial files and directories in `directory` whose writing
    process no longer runs (left by a kill during a write)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        if not (name.startswith(".") and PARTIAL_MARK in name):
            continue
        pid = name.rsplit(PARTIAL_MARK, 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _is_running(int(pid)):
            _remove(os.path.join(directory, name))


def _remove(path):
    """Removes a file or directory tree; one that another cleaner removed first is fine."""
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def _is_running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def fsync_tree(root):
    """Flushes every file and directory under `root` to disk."""
    for directory, _, files in os.walk(root):
        for name in files:
            fsync_path(os.path.join(directory, name))
        fsync_path(directory)


def fsync_path(path):
    """Flushes one file or directory to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

