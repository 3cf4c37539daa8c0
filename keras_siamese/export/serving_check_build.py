"""The serving check's C++ program (`serving_check.cc`), compiled once and cached.

It is compiled against the `libtensorflow_cc` and headers shipped in the
tensorflow wheel, so it loads SavedModels with the same C++ loader TF Serving
uses. One binary is kept per TensorFlow version, source and build flags.

Example:
>>> from keras_siamese.export import build_serving_check
>>> build_serving_check()  # doctest: +SKIP
'/root/.cache/keras_siamese/serving_check-tf2.21.0-...'
"""

import hashlib
import importlib.resources
import os
import shutil
import subprocess
import tempfile

from keras_siamese.export.serving_check_errors import ServingCheckBuildError

SOURCE_NAME = "serving_check.cc"


def build_serving_check(cache_dir=None):
    """Compiles the C++ checker once and returns its path (cached, built atomically).

    The binary is cached under `cache_dir` (default: `$KERAS_SIAMESE_CACHE`,
    else `$XDG_CACHE_HOME/keras_siamese`, else `~/.cache/keras_siamese`), named
    by the TensorFlow version and a hash of the source and build flags. Needs a
    C++17 compiler (`$CXX`, else `g++`); takes about a minute once.

    Raises:
        ServingCheckBuildError: no compiler was found or compiling failed.

    Example:
    >>> os.access(build_serving_check(), os.X_OK)  # doctest: +SKIP
    True
    """
    import tensorflow as tf

    compiler = _find_compiler()
    source = importlib.resources.files("keras_siamese.export").joinpath(SOURCE_NAME).read_bytes()
    library_dir = tf.sysconfig.get_lib()
    flags = [
        "-std=c++17", "-O1", "-w", "-D_GLIBCXX_USE_CXX11_ABI=1", "-DEIGEN_MAX_ALIGN_BYTES=64",
        f"-I{tf.sysconfig.get_include()}",
    ]
    # --no-as-needed keeps libtensorflow_cc, whose static registrars provide the
    # session factory, although no symbol of it is referenced directly.
    link = [f"-L{library_dir}", "-Wl,--no-as-needed", "-l:libtensorflow_cc.so.2",
            "-l:libtensorflow_framework.so.2", f"-Wl,-rpath,{library_dir}"]
    key = hashlib.sha256(
        b"\0".join([source, tf.__version__.encode(), " ".join(flags + link).encode()])
    ).hexdigest()[:16]
    cache_dir = os.fspath(cache_dir or _default_cache_dir())
    binary = os.path.join(cache_dir, f"serving_check-tf{tf.__version__}-{key}")
    if not os.access(binary, os.X_OK):
        _compile(compiler, source, flags, link, cache_dir, binary)
    return binary


def _find_compiler():
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not compiler:
        raise ServingCheckBuildError(
            "The serving check compiles a small C++ program and needs a C++17 compiler: "
            "install g++ (Debian/Ubuntu: apt-get install g++) or set $CXX."
        )
    return compiler


def _compile(compiler, source, flags, link, cache_dir, binary):
    """Compiles `source` in a scratch directory inside `cache_dir`, then renames the result to
    `binary`: concurrent builds each install a complete binary, a failed one leaves nothing."""
    os.makedirs(cache_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".serving_check-build-", dir=cache_dir) as build:
        source_path = os.path.join(build, SOURCE_NAME)
        with open(source_path, "wb") as file:
            file.write(source)
        output = os.path.join(build, "serving_check")
        try:
            result = subprocess.run([compiler, *flags, source_path, "-o", output, *link],
                                    capture_output=True, text=True)
        except OSError as error:
            raise ServingCheckBuildError(f"Running the compiler {compiler} failed: {error}") from error
        if result.returncode != 0:
            raise ServingCheckBuildError(
                f"Compiling the serving check with {compiler} failed:\n{result.stderr[-4000:]}",
                log=result.stderr,
            )
        os.replace(output, binary)


def _default_cache_dir():
    if os.environ.get("KERAS_SIAMESE_CACHE"):
        return os.environ["KERAS_SIAMESE_CACHE"]
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache_home, "keras_siamese")
