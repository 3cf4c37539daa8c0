"""Serving check without Docker: load a SavedModel through TensorFlow's C++ loader.

TF Serving is C++: it registers TF Text's ops, loads a version directory with
`tensorflow::LoadSavedModel` (tag "serve"), replays
`assets.extra/tf_serving_warmup_requests` and runs the requested SignatureDef.
`check_serving` does the same with a small C++ program (`serving_check.cc`),
compiled once against the `libtensorflow_cc` and headers shipped in the
tensorflow wheel and cached per TensorFlow version and source hash, then runs
the signature on a batch of strings and reports what it saw. With a
`ServingLoad`, it then sends the same mixed requests from several threads at
once through the one loaded model and compares every answer with the answer
the request got alone.
"""

import argparse
import dataclasses
import hashlib
import importlib.resources
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

from keras_siamese.artifacts import reading
from keras_siamese.checks import check_integer, is_number
from keras_siamese.export.requests import as_bytes

SOURCE_NAME = "serving_check.cc"
# The oneDNN kernels of the fused graph (keras_siamese.layers.fusion) as TensorFlow names them.
FUSED_KERNELS = ("_MklNativeFusedMatMul", "_MklFusedMatMul", "_MklLayerNorm")

# Texts a served embedding model meets: plain, empty, blank, non-Latin, long.
DEFAULT_TEXTS = (
    "a small domestic dog",
    "to move very fast",
    "",
    "   ",
    "狗 🐕 chien",
    "word " * 2000,
)


class ServingCheckError(RuntimeError):
    """The SavedModel failed the serving check (or the checker could not be built)."""

    def __init__(self, message, stage=None, log=""):
        self.stage = stage
        self.log = log
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class ServingLoad:
    """The load stage of `check_serving`: concurrent clients against one loaded version.

    `requests` requests of random batch sizes from 1 to `max_batch_size` texts,
    drawn (seeded by `seed`) from the texts given to `check_serving`, are first
    answered one at a time; then `threads` threads each send all of them, at
    once, through the same session, as TF Serving's concurrent clients do.
    Every answer under load must be within `tolerance` of its one-at-a-time
    answer and finite.

    Example:
    >>> check_serving("serving/wordnet/1", texts, load=ServingLoad(threads=8))  # doctest: +SKIP
    """

    threads: int = 8
    requests: int = 1000
    max_batch_size: int = 64
    tolerance: float = 1e-5
    seed: int = 0

    def __post_init__(self):
        for name in ("threads", "requests", "max_batch_size"):
            check_integer(getattr(self, name), f"ServingLoad.{name}")
        if not (is_number(self.tolerance) and self.tolerance >= 0):
            raise ValueError(f"ServingLoad.tolerance must be a number >= 0, got {self.tolerance!r}.")

    def plan(self, text_count):
        """The requests, each an array of indices into the texts."""
        rng = np.random.default_rng(self.seed)
        sizes = rng.integers(1, self.max_batch_size + 1, self.requests)
        return [rng.integers(0, text_count, size) for size in sizes]


@dataclasses.dataclass
class ServingLoadReport:
    """What the load stage saw: time under load, the largest difference, the norms."""

    threads: int
    requests_per_thread: int
    seconds: float
    max_difference: float
    min_norm: float
    max_norm: float
    non_finite_values: int


@dataclasses.dataclass
class ServingCheckReport:
    """What the C++ loader saw; `embeddings` holds the signature's output row by row."""

    model_dir: str
    signature: str
    output: str
    signatures: dict
    op_libraries: list
    load_seconds: float
    warmup_records: int
    warmup_seconds: float
    batch_size: int
    latencies_seconds: list
    embeddings: np.ndarray
    executed_ops: dict
    load: ServingLoadReport = None

    @property
    def fused_ops(self):
        """{oneDNN fused kernel: launches in one request}: the fused matrix products
        (`_MklNativeFusedMatMul`, `_MklFusedMatMul`) and layer norms (`_MklLayerNorm`) the
        C++ loader's optimised graph ran (see `keras_siamese.layers.fusion`)."""
        return {op: count for op, count in self.executed_ops.items() if op in FUSED_KERNELS}

    def summary(self):
        """A short human-readable report.

        Example:
        >>> print(check_serving("serving/wordnet/1").summary())  # doctest: +SKIP
        serving check passed: serving/wordnet/1 ...
        """
        lines = [f"serving check passed: {self.model_dir}"]
        for name, signature in self.signatures.items():
            marker = "*" if name == self.signature else " "
            lines.append(
                f" {marker} signature {name}: {_describe(signature['inputs'])} -> "
                f"{_describe(signature['outputs'])}"
            )
        libraries = ", ".join(os.path.basename(path) for path in self.op_libraries) or "none"
        lines.append(f"   op libraries loaded ({len(self.op_libraries)}): {libraries}")
        lines.append(f"   loaded in {self.load_seconds:.2f} s (tags: serve)")
        lines.append(
            f"   warmup: {self.warmup_records} record(s) replayed in {self.warmup_seconds:.2f} s"
        )
        latencies = np.asarray(self.latencies_seconds) * 1e3
        lines.append(
            f"   {len(self.embeddings)} text(s) in {len(latencies)} request(s) of up to "
            f"{self.batch_size}: latency median {np.median(latencies):.1f} ms, "
            f"max {latencies.max():.1f} ms per request"
        )
        fused = ", ".join(f"{op} x{count}" for op, count in sorted(self.fused_ops.items())) or "none"
        lines.append(f"   fused kernels in one request: {fused}")
        norms = np.linalg.norm(self.embeddings, axis=1)
        lines.append(
            f"   {self.output}: {self.embeddings.shape[0]} x {self.embeddings.shape[1]} float32, "
            f"norms {norms.min():.6f} to {norms.max():.6f}"
        )
        if self.load:
            load = self.load
            lines.append(
                f"   load: {load.threads} threads x {load.requests_per_thread} requests at once in "
                f"{load.seconds:.1f} s; largest difference from one at a time {load.max_difference:.2g}, "
                f"norms {load.min_norm:.6f} to {load.max_norm:.6f}"
            )
        return "\n".join(lines)


def check_serving(
    saved_model_dir,
    texts=DEFAULT_TEXTS,
    *,
    batch_size=None,
    signature_name="serving_default",
    output_name=None,
    warmup=True,
    check_ops=True,
    load=None,
    cache_dir=None,
    timeout=None,
):
    """Loads `saved_model_dir` as TF Serving does and runs `signature_name` on `texts`.

    Args:
        saved_model_dir: a version directory (`base_path/<version>/`).
        texts: strings (or bytes, sent as they are) to run, `batch_size` per request.
        batch_size: texts per request; all of them in one request by default.
        signature_name: the signature to run; it must take one string tensor.
        output_name: the float32 output to return; the signature's only output
            by default.
        warmup: replay `assets.extra/tf_serving_warmup_requests` first.
        check_ops: refuse ops TF Serving does not link before loading
            (`keras_siamese.export.ops.check_serving_ops`).
        load: a `ServingLoad` to run after the texts: the same loaded model
            under concurrent requests drawn from `texts`.
        cache_dir: where the compiled checker is kept (see `build_serving_check`).
        timeout: seconds after which the check is abandoned.

    Returns:
        A `ServingCheckReport`.

    Raises:
        ServingCheckError: loading, warmup, the request or the load failed in C++,
            or an answer under load differed from the same request alone.
        UnsupportedOpsError: the graph uses ops TF Serving does not link.

    Example:
    >>> report = check_serving("serving/wordnet/1", ["a dog", "to run"])  # doctest: +SKIP
    >>> report.embeddings.shape  # doctest: +SKIP
    (2, 64)
    """
    from keras_siamese.export.ops import check_serving_ops, tf_text_op_libraries

    saved_model_dir = os.path.abspath(os.fspath(saved_model_dir))
    if not os.path.isfile(os.path.join(saved_model_dir, "saved_model.pb")):
        raise ValueError(f"{saved_model_dir} is not a SavedModel directory (no saved_model.pb).")
    if isinstance(texts, (str, bytes)):
        raise ValueError("texts must be a list of strings, not one string.")
    encoded = [as_bytes(text) for text in texts]
    if not encoded:
        raise ValueError("texts is empty; give at least one string to run.")
    batch_size = len(encoded) if batch_size is None else check_integer(batch_size, "batch_size")
    if load is not None and not isinstance(load, ServingLoad):
        raise ValueError(f"load must be a ServingLoad or None, got {load!r}.")
    if check_ops:
        check_serving_ops(saved_model_dir)
    binary = build_serving_check(cache_dir)
    libraries = tf_text_op_libraries()
    with tempfile.TemporaryDirectory(prefix="keras_siamese_serving_check-") as work:
        texts_path = os.path.join(work, "texts.bin")
        embeddings_path = os.path.join(work, "embeddings.f32")
        with open(texts_path, "wb") as file:
            for text in encoded:
                file.write(struct.pack("<I", len(text)) + text)
        command = [binary, saved_model_dir, "--texts", texts_path, "--embeddings", embeddings_path,
                   "--signature", signature_name, "--batch-size", str(batch_size)]
        command += [argument for library in libraries for argument in ("--op-library", library)]
        command += ["--output", output_name] if output_name else []
        command += [] if warmup else ["--no-warmup"]
        if load:
            plan_path = os.path.join(work, "load_plan.bin")
            with open(plan_path, "wb") as file:
                for indices in load.plan(len(encoded)):
                    file.write(struct.pack(f"<I{len(indices)}I", len(indices), *indices))
            command += ["--load-plan", plan_path, "--load-threads", str(load.threads)]
        environment = dict(os.environ)
        environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                    env=environment)
        except subprocess.TimeoutExpired as error:
            raise ServingCheckError(
                f"serving check of {saved_model_dir} did not finish in {timeout} s", "timeout"
            ) from error
        report = _parse_report(result, saved_model_dir)
        embeddings = np.fromfile(embeddings_path, dtype=np.float32)
    load_report = ServingLoadReport(**report["load"]) if load else None
    if load_report and (load_report.non_finite_values or load_report.max_difference > load.tolerance):
        raise ServingCheckError(
            f"serving check of {saved_model_dir} failed under load: {load_report.non_finite_values} "
            f"non-finite values, answers up to {load_report.max_difference:.3g} away from the same "
            f"request alone (tolerance {load.tolerance:g})", "load",
        )
    fields = {field.name for field in dataclasses.fields(ServingCheckReport)} - {"embeddings", "load"}
    return ServingCheckReport(
        **{name: report[name] for name in fields},
        embeddings=embeddings.reshape(report["rows"], report["columns"]), load=load_report,
    )


def build_serving_check(cache_dir=None):
    """Compiles the C++ checker once and returns its path (cached, built atomically).

    The binary is cached under `cache_dir` (default: `$KERAS_SIAMESE_CACHE`,
    else `$XDG_CACHE_HOME/keras_siamese`, else `~/.cache/keras_siamese`), named
    by the TensorFlow version and a hash of the source and build flags. Needs a
    C++17 compiler (`$CXX`, else `g++`); takes about a minute once.

    Example:
    >>> os.access(build_serving_check(), os.X_OK)  # doctest: +SKIP
    True
    """
    import tensorflow as tf

    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not compiler:
        raise ServingCheckError(
            "The serving check compiles a small C++ program and needs a C++17 compiler: "
            "install g++ (Debian/Ubuntu: apt-get install g++) or set $CXX.", "build"
        )
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
    if os.access(binary, os.X_OK):
        return binary
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
            raise ServingCheckError(f"Running the compiler {compiler} failed: {error}", "build") from error
        if result.returncode != 0:
            raise ServingCheckError(
                f"Compiling the serving check with {compiler} failed:\n{result.stderr[-4000:]}",
                "build", result.stderr,
            )
        os.replace(output, binary)  # concurrent builds each install a complete binary
    return binary


def main(argv=None):
    """`keras-siamese check-serving PATH`: prints the report, exit status 0 if it passed."""
    parser = argparse.ArgumentParser(
        prog="keras-siamese check-serving",
        description="Load a SavedModel version directory as TF Serving does (C++ loader, "
        "TF Text ops, warmup replay) and run its string signature.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser):
    """Adds check-serving's arguments to an argparse parser (for the CLI's subcommand)."""
    parser.add_argument("path", help="a version directory: base_path/<version>/")
    parser.add_argument("--texts", help="file with one text per line ('-': stdin) "
                        "(default: a few mixed probe texts)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="texts per request (default: all in one)")
    parser.add_argument("--signature", default="serving_default",
                        help="the string signature to run (default: serving_default)")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the warmup replay (default: replay the version's warmup file)")
    parser.add_argument("--load-threads", type=int, default=0,
                        help="then send --load-requests mixed requests from this many threads at once "
                        "and compare each answer with the same request alone (default: 0, no load)")
    parser.add_argument("--load-requests", type=int, default=ServingLoad.requests,
                        help=f"requests per thread, batches of 1 to {ServingLoad.max_batch_size} of the "
                        f"texts (default: {ServingLoad.requests})")
    parser.set_defaults(usage_error=parser.error)
    return parser


def run(args):
    """Runs the check for parsed `args`; prints the report; returns the exit status.

    0: passed; 1: the model failed the check; 2 (one argparse line): the
    arguments, the texts file or the version directory cannot be used.
    """
    from keras_siamese.export.ops import UnsupportedOpsError

    try:
        texts = read_lines(args.texts) if args.texts else DEFAULT_TEXTS
        load = ServingLoad(args.load_threads, args.load_requests) if args.load_threads else None
        report = check_serving(args.path, texts, batch_size=args.batch_size,
                               signature_name=args.signature, warmup=not args.no_warmup, load=load)
    except (ServingCheckError, UnsupportedOpsError) as error:
        print(f"serving check failed: {error}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:
        args.usage_error(str(error))
    print(report.summary())
    return 0


def read_lines(path):
    """The lines of a UTF-8 text file (`-`: stdin), without their line ends (a `--texts` file)."""
    if path == "-":
        return [line.rstrip("\n") for line in sys.stdin]
    with reading(path, "texts file (UTF-8, one text per line)"), open(path, encoding="utf-8") as file:
        return [line.rstrip("\n") for line in file]


def _parse_report(result, saved_model_dir):
    try:
        report = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise ServingCheckError(
            f"serving check of {saved_model_dir} crashed (exit status {result.returncode}):\n"
            f"{result.stderr[-4000:]}", "crash", result.stderr,
        ) from None
    if not report["ok"]:
        raise ServingCheckError(
            f"serving check of {saved_model_dir} failed at {report['stage']}: {report['error']}",
            report["stage"], result.stderr,
        )
    return report


def _describe(tensors):
    return ", ".join(
        f"{name} {info['dtype']} {info['shape'] if info['shape'] is not None else '(any rank)'}"
        for name, info in tensors.items()
    )


def _default_cache_dir():
    if os.environ.get("KERAS_SIAMESE_CACHE"):
        return os.environ["KERAS_SIAMESE_CACHE"]
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache_home, "keras_siamese")


if __name__ == "__main__":
    sys.exit(main())
