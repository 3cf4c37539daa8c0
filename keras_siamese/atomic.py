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


@contextlib.contextmanager
def atomic_directory(path):
    """Yields a hidden partial directory beside `path`; renames it to `path` when the block succeeds.

    `path` must not exist, or be an empty directory: what a directory holds is
    never overwritten (a `FileExistsError` says so before anything is written).
    A failure removes the partial; a kill leaves it for the next write beside it
    to remove, as `atomic_file_path` does.

    Example:
    >>> with atomic_directory("exports/faq") as partial:  # doctest: +SKIP
    ...     write_files(partial)
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise FileExistsError(f"{path} exists and is not empty; export to a new directory.")
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    remove_abandoned_partials(parent)
    partial = tempfile.mkdtemp(prefix=f".{name}{PARTIAL_MARK}{os.getpid()}-", dir=parent)
    try:
        yield partial
        fsync_tree(partial)
        if os.path.isdir(path):
            os.rmdir(path)  # empty, checked above
        os.rename(partial, path)
        fsync_path(parent)
    finally:
        _remove(partial)


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

