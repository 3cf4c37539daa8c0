"""Mixed precision: train in bfloat16 or float16, serve in bfloat16; embeddings and losses stay float32.

`"bfloat16"` and `"float16"` name Keras' `mixed_bfloat16` and `mixed_float16`
policies: variables are float32, the encoder computes in the narrow type, and
`Pooling`, `Projection`'s output, `L2Normalize`, every loss and the mining
compute in float32. Under `mixed_float16` Keras' `compile` wraps the optimizer
in a `LossScaleOptimizer` (float16 gradients underflow without loss scaling).
"""

import contextlib
import warnings

PRECISIONS = ("float32", "bfloat16", "float16")
# What an export can compute in: the training precisions and int8 (keras_siamese.quantization).
SERVING_PRECISIONS = (*PRECISIONS, "int8")
MATMUL_PRECISIONS = ("float32", "bf16")
# oneDNN's fpmath mode, which TensorFlow reads once, at the process's first float32 matrix product.
_FPMATH_MODE_VARIABLE = "TF_SET_ONEDNN_FPMATH_MODE"
_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
# /proc/cpuinfo flags of CPUs with fast matmuls in each type
_CPU_FLAGS = {"bfloat16": ("avx512_bf16", "amx_bf16"), "float16": ("avx512_fp16", "amx_fp16")}


def check_precision(precision, name="precision", allowed=PRECISIONS):
    """`precision` if it is one of `allowed` (`PRECISIONS`); otherwise a ValueError naming them.

    Example:
    >>> check_precision("int8")
    Traceback (most recent call last):
    ...
    ValueError: precision must be one of ('float32', 'bfloat16', 'float16'), got 'int8'.
    """
    if not isinstance(precision, str) or precision not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {precision!r}.")
    return precision


def policy_name(precision):
    """The Keras dtype policy of a precision: `"bfloat16"` -> `"mixed_bfloat16"`.

    Example:
    >>> policy_name("float16")
    'mixed_float16'
    """
    return _POLICIES[check_precision(precision)]


@contextlib.contextmanager
def training_precision(precision):
    """Within the block, models are built with `precision`'s policy (Keras' global policy),
    restored afterwards; warns when this machine has no fast arithmetic of that type.

    Example:
    >>> with training_precision("bfloat16"):  # doctest: +SKIP
    ...     model = TripletSemiHard.from_encoder(TextEncoder.from_preset(preset))
    """
    import keras

    name = policy_name(precision)
    _warn_if_slow(precision)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@contextlib.contextmanager
def computing_in(model, compute_dtype):
    """Within the block, every float32-variable layer of `model` computes in `compute_dtype`
    (its variables stay float32 and are cast as they are read); the policies are restored after.

    Eager calls and functions traced inside the block (a SavedModel signature) compute in
    `compute_dtype`; a function traced before it (`model.predict`'s) keeps its dtype.
    `Pooling`, `L2Normalize` and `Projection`'s output compute float32 whatever the policy.

    Example:
    >>> with computing_in(model, "bfloat16"):  # doctest: +SKIP
    ...     embeddings = model(tokens)
    """
    import keras
    import tensorflow as tf

    name = "float32" if check_precision(compute_dtype, "compute_dtype") == "float32" else policy_name(compute_dtype)
    layers = [
        layer for layer in [model, *tf.train.TrackableView(model).descendants()]
        if isinstance(layer, keras.Layer) and layer.dtype_policy.quantization_mode is None
        and layer.dtype_policy.variable_dtype == "float32"
    ]
    policies = [layer.dtype_policy for layer in layers]
    try:
        for layer in layers:
            layer.dtype_policy = name
        yield model
    finally:
        for layer, policy in zip(layers, policies):
            layer.dtype_policy = policy


def check_matmul_precision(precision, name="matmul precision"):
    """`precision` if it is one of `MATMUL_PRECISIONS`; otherwise a ValueError naming them.

    Example:
    >>> check_matmul_precision("tf32")
    Traceback (most recent call last):
    ...
    ValueError: matmul precision must be one of ('float32', 'bf16'), got 'tf32'.
    """
    if not isinstance(precision, str) or precision not in MATMUL_PRECISIONS:
        raise ValueError(f"{name} must be one of {MATMUL_PRECISIONS}, got {precision!r}.")
    return precision


def set_matmul_precision(precision):
    """How this process's float32 matrix products compute on CPUs: `"bf16"` rounds their
    inputs to bfloat16 and accumulates in float32 (oneDNN's bf16 fpmath mode, which oneDNN
    applies on CPUs with AMX; it warns and changes nothing elsewhere); `"float32"`
    (TensorFlow's default) keeps them whole.

    Variables, activations, gradients and the optimizer stay float32: unlike
    `training_precision("bfloat16")`, only the products' inputs are rounded.
    TensorFlow reads the setting (the environment variable `TF_SET_ONEDNN_FPMATH_MODE`)
    once, when the process runs its first float32 matrix product: call this before
    building or running any model (`keras-siamese train --matmul-precision bf16` does),
    or set `TF_SET_ONEDNN_FPMATH_MODE=BF16` in the environment. Later calls of this
    function do not change a process that already ran one.

    Example:
    >>> set_matmul_precision("bf16")  # doctest: +SKIP
    >>> model = TripletSemiHard.from_encoder(encoder)  # doctest: +SKIP
    """
    import os

    if check_matmul_precision(precision) == "bf16":
        if not _cpu_has(("amx_bf16",)):
            warnings.warn(
                "matmul precision bf16 on a CPU without AMX (amx_bf16): oneDNN keeps float32 products "
                "whole here, so it changes neither speed nor numbers (benchmarks/README.md).",
                UserWarning, stacklevel=2,
            )
        os.environ[_FPMATH_MODE_VARIABLE] = "BF16"
    else:
        os.environ.pop(_FPMATH_MODE_VARIABLE, None)


def matmul_precision():
    """`"bf16"` where this process's environment asks oneDNN for bfloat16 matrix-product
    inputs (`set_matmul_precision`), else `"float32"`."""
    import os

    return "bf16" if os.environ.get(_FPMATH_MODE_VARIABLE) == "BF16" else "float32"


def _warn_if_slow(precision):
    """A `UserWarning` (at the caller of `training_precision`) when `precision` has no fast
    arithmetic here: no GPU and no CPU instructions for it, so it runs slower than float32."""
    import tensorflow as tf

    if precision == "float32" or tf.config.list_physical_devices("GPU") or _cpu_has(_CPU_FLAGS[precision]):
        return
    advice = "use bfloat16 or float32" if precision == "float16" else "use float32"
    warnings.warn(
        f"precision {precision} on a machine without a GPU or CPU instructions for {precision} "
        f"({' or '.join(_CPU_FLAGS[precision])}): it runs slower than float32 here; {advice}.",
        UserWarning, stacklevel=4,
    )


def _cpu_has(flags):
    """Whether this CPU lists any of `flags` in /proc/cpuinfo (True where that cannot be read)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            listed = set(cpuinfo.read().split())
    except OSError:  # not Linux: cannot tell, do not warn
        return True
    return any(flag in listed for flag in flags)
