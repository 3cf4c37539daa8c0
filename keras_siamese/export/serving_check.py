"""Serving check without Docker: load a SavedModel through TensorFlow's C++ loader.

TF Serving is C++: it registers TF Text's ops, loads a version directory with
`tensorflow::LoadSavedModel` (tag "serve"), replays
`assets.extra/tf_serving_warmup_requests` and runs the requested SignatureDef.
`check_serving` does the same with a small C++ program (`serving_check.cc`,
compiled once by `keras_siamese.export.serving_check_build`), then runs the
signature on a batch of strings and reports what it saw. With a
`ServingLoad`, it then sends the same mixed requests from several threads at
once through the one loaded model and compares every answer with the answer
the request got alone. A failure raises the `ServingCheckError` subclass of
its stage (`keras_siamese.export.serving_check_errors`). The command line is
`keras-siamese check-serving PATH`.

Example:
>>> from keras_siamese.export import check_serving
>>> print(check_serving("serving/wordnet/1").summary())  # doctest: +SKIP
serving check passed: serving/wordnet/1 ...
"""

import dataclasses
import json
import os
import struct
import subprocess
import tempfile

import numpy as np

from keras_siamese.checks import check_integer, is_number
from keras_siamese.export.requests import SIGNATURE_NAME, as_bytes
from keras_siamese.export.serving_check_build import build_serving_check
from keras_siamese.export.serving_check_errors import (
    ERRORS_BY_STAGE,
    ServingCheckConcurrencyError,
    ServingCheckError,
    ServingCheckTimeoutError,
)
from keras_siamese.export.warmup import MAX_WARMUP_RECORDS, read_warmup_records

EMBEDDINGS_FILE = "embeddings.f32"  # what the checker answered: float32 rows, native byte order
# The oneDNN kernels of the fused graph (keras_siamese.layers.fusion) and of int8 products
# (keras_siamese.quantization) as TensorFlow names them.
FUSED_KERNELS = (
    "_MklNativeFusedMatMul", "_MklFusedMatMul", "_MklLayerNorm", "_MklFusedBatchMatMulV2", "_QuantizedMatMul", "_MklQuantizeV2",
)

# Texts a served embedding model meets: plain, empty, blank, non-Latin, long.
DEFAULT_TEXTS = (
    "a small domestic dog",
    "to move very fast",
    "",
    "   ",
    "狗 🐕 chien",
    "word " * 2000,
)


@dataclasses.dataclass(frozen=True)
class ServingLoad:
    """The concurrency stage of `check_serving`: concurrent clients against one loaded version.

    `requests` requests of random batch sizes from 1 to `max_batch_size` texts,
    drawn (seeded by `seed`) from the texts given to `check_serving`, are first
    answered one at a time; then `threads` threads each send all of them, at
    once, through the same session, as TF Serving's concurrent clients do.
    Every answer under load must be within `tolerance` of its one-at-a-time
    answer and finite, else `check_serving` raises `ServingCheckConcurrencyError`.

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
    """What the concurrency stage saw: time under load, the largest difference, the norms."""

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
        (`_MklNativeFusedMatMul`, `_MklFusedMatMul`), layer norms (`_MklLayerNorm`) and int8
        products (`_QuantizedMatMul`, `_MklQuantizeV2`) the C++ loader's optimised graph ran
        (see `keras_siamese.layers.fusion`, `keras_siamese.quantization`)."""
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
        ServingCheckBuildError: no C++ compiler, or the checker did not compile.
        ServingCheckLoadError, ServingCheckWarmupError, ServingCheckRunError:
            loading, the warmup replay or the requests failed in C++.
        ServingCheckConcurrencyError: a request under `load` failed, or its
            answer differed from the same request alone.
        ServingCheckTimeoutError: `timeout` ran out.
        UnsupportedOpsError: the graph uses ops TF Serving does not link.

    Example:
    >>> report = check_serving("serving/wordnet/1", ["a dog", "to run"])  # doctest: +SKIP
    >>> report.embeddings.shape  # doctest: +SKIP
    (2, 64)
    """
    from keras_siamese.export.ops import check_serving_ops

    saved_model_dir, encoded, batch_size = _check_arguments(saved_model_dir, texts, batch_size, load)
    if check_ops:
        check_serving_ops(saved_model_dir)
    binary = build_serving_check(cache_dir)
    with tempfile.TemporaryDirectory(prefix="keras_siamese_serving_check-") as work:
        command = [binary, saved_model_dir, "--signature", signature_name, "--batch-size", str(batch_size),
                   *_input_arguments(work, encoded, load), *_op_library_arguments()]
        command += ["--output", output_name] if output_name else []
        command += _warmup_arguments(work, saved_model_dir) if warmup else []
        report = _run_checker(command, saved_model_dir, timeout)
        embeddings = np.fromfile(os.path.join(work, EMBEDDINGS_FILE), dtype=np.float32)
    return _checked_report(report, embeddings.reshape(report["rows"], report["columns"]), load)


def _check_arguments(saved_model_dir, texts, batch_size, load):
    """Raises `ValueError` for arguments `check_serving` cannot run; returns the absolute
    version directory, the texts as bytes and the batch size."""
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
    return saved_model_dir, encoded, batch_size


def _input_arguments(work, encoded, load):
    """Writes the checker's input files into `work`; returns the arguments that name them.

    Texts: records of a little-endian uint32 byte length, then the bytes. Load
    plan: records of a uint32 count, then that many uint32 indices of texts.
    """
    texts_path = os.path.join(work, "texts.bin")
    with open(texts_path, "wb") as file:
        file.write(b"".join(_framed(text) for text in encoded))
    arguments = ["--texts", texts_path, "--embeddings", os.path.join(work, EMBEDDINGS_FILE)]
    if load:
        plan_path = os.path.join(work, "load_plan.bin")
        with open(plan_path, "wb") as file:
            for indices in load.plan(len(encoded)):
                file.write(struct.pack(f"<I{len(indices)}I", len(indices), *indices))
        arguments += ["--load-plan", plan_path, "--load-threads", str(load.threads)]
    return arguments


def _warmup_arguments(work, saved_model_dir):
    """Decodes the version's warmup records and writes their requests into `work` for the
    checker to replay after loading, as TF Serving does; returns the arguments that name them,
    or, for records it cannot replay, the reason for the checker's warmup step to fail with.

    Per request, each string a little-endian uint32 byte length, then the
    bytes: the signature name; a uint32 input count, then each input's name
    and serialized `TensorProto`; a uint32 output_filter count, then each
    output name.
    """
    try:
        logs = read_warmup_records(saved_model_dir)
    except ValueError as error:  # UnreadableFileError: truncated, corrupt, not PredictionLogs
        return ["--warmup-error", str(error)]
    if len(logs) > MAX_WARMUP_RECORDS:
        return ["--warmup-error", f"more than {MAX_WARMUP_RECORDS} warmup records; TF Serving refuses the model"]
    for number, log in enumerate(logs, start=1):
        if log.WhichOneof("log_type") != "predict_log":
            return ["--warmup-error", f"warmup record {number} holds {log.WhichOneof('log_type') or 'no log'}; "
                    "this check replays predict_log records only"]
    if not logs:
        return []
    path = os.path.join(work, "warmup_requests.bin")
    with open(path, "wb") as file:
        for request in (log.predict_log.request for log in logs):
            file.write(_framed((request.model_spec.signature_name or SIGNATURE_NAME).encode()))
            file.write(struct.pack("<I", len(request.inputs)))
            for name, tensor in request.inputs.items():
                file.write(_framed(name.encode()) + _framed(tensor.SerializeToString()))
            file.write(struct.pack("<I", len(request.output_filter)))
            file.write(b"".join(_framed(name.encode()) for name in request.output_filter))
    return ["--warmup-requests", path]


def _framed(data):
    return struct.pack("<I", len(data)) + data


def _op_library_arguments():
    """TF Text's op libraries, which TF Serving links, for the checker to register first."""
    from keras_siamese.export.ops import tf_text_op_libraries

    return [argument for library in tf_text_op_libraries() for argument in ("--op-library", library)]


def _run_checker(command, saved_model_dir, timeout):
    """Runs the C++ checker; returns its JSON report, or raises the error of the stage that failed."""
    environment = dict(os.environ)
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)
    except subprocess.TimeoutExpired as error:
        raise ServingCheckTimeoutError(
            f"serving check of {saved_model_dir} did not finish in {timeout} s"
        ) from error
    try:
        report = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise ServingCheckError(
            f"serving check of {saved_model_dir} crashed (exit status {result.returncode}):\n"
            f"{result.stderr[-4000:]}", "crash", result.stderr,
        ) from None
    if not report["ok"]:
        error_class = ERRORS_BY_STAGE.get(report["stage"], ServingCheckError)
        raise error_class(
            f"serving check of {saved_model_dir} failed at {report['stage']}: {report['error']}",
            report["stage"], result.stderr,
        )
    return report


def _checked_report(report, embeddings, load):
    """The `ServingCheckReport`; raises `ServingCheckConcurrencyError` if an answer under load was
    not finite or not within `load.tolerance` of the same request alone."""
    load_report = ServingLoadReport(**report["load"]) if load else None
    if load_report and (load_report.non_finite_values or load_report.max_difference > load.tolerance):
        raise ServingCheckConcurrencyError(
            f"serving check of {report['model_dir']} failed under load: {load_report.non_finite_values} "
            f"non-finite values, answers up to {load_report.max_difference:.3g} away from the same "
            f"request alone (tolerance {load.tolerance:g})"
        )
    fields = {field.name for field in dataclasses.fields(ServingCheckReport)} - {"embeddings", "load"}
    return ServingCheckReport(**{name: report[name] for name in fields}, embeddings=embeddings, load=load_report)


def _describe(tensors):
    return ", ".join(
        f"{name} {info['dtype']} {info['shape'] if info['shape'] is not None else '(any rank)'}"
        for name, info in tensors.items()
    )
