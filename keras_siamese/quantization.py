"""int8 serving graphs: the encoder's matrix products as oneDNN's `_QuantizedMatMul`, calibrated on texts.

`calibrate_int8(model, texts)` records the inputs of every fused matrix product
of the encoder (the `Dense` and `EinsumDense` layers that
`keras_siamese.layers.fusion` writes as 2-D products) on calibration texts,
chooses each product's int8 form (SmoothQuant strength and clipping range, by
its output error), and keeps in float32 the products that err most until the
int8 embeddings of held-out texts are within a cosine of float32's.
`int8_matmuls(model, calibration)` makes the graphs traced inside it compute
each int8 product as `QuantizeV2` (activations, divided by the smoothing, to
int8 over the calibrated range) followed by `_QuantizedMatMul` with
per-output-channel int8 weights, the bias and the activation (GELU, ReLU,
tanh, sigmoid) fused, float32 out. Attention scores, softmax, layer norms,
pooling, the head and the normalisation stay float32.
`export_saved_model(..., compute_dtype="int8", calibration_texts=...)` uses
both.

`_QuantizedMatMul` is an internal op of TensorFlow's oneDNN build
(`tensorflow/core/kernels/mkl/mkl_matmul_op_fused.cc`): no Python wrapper and
no compatibility promise across TensorFlow versions, so a SavedModel that uses
it must be served by the TensorFlow (Serving) version it was exported with,
built with oneDNN (the official CPU builds are). It was checked on the
versions in `CHECKED_TENSORFLOW_VERSIONS`; `check_int8_kernel` refuses in one
line where the op is missing or a small product through it comes out wrong.

Weights take 7 bits (-63..63): CPUs without VNNI (AVX2, AVX-512 before
Cascade Lake) multiply unsigned x signed 8-bit pairs into 16-bit sums, which
saturate with full 8-bit weights (relative error 0.16 instead of 0.02 on an
AVX2 CPU; benchmarks/README.md). Seven bits are exact everywhere.
"""

import contextlib
import dataclasses
import functools
import math

import keras
import numpy as np
import tensorflow as tf

from keras_siamese.layers.fusion import fused_graph_enabled, fused_matmul, is_fused, matmul_forms

INT8_MATMUL_OP = "_QuantizedMatMul"
CHECKED_TENSORFLOW_VERSIONS = ("2.21",)
# Per product, the candidates calibration tries: how strongly input-channel outliers move into the
# weights (SmoothQuant's alpha; 0: not at all), and the clipping percentile of |input| (100: the largest).
SMOOTHING_STRENGTHS = (0.0, 0.5, 0.65, 0.8)
CLIP_PERCENTILES = (99.9, 99.99, 99.999, 100.0)
WEIGHT_LEVELS = 63  # 7-bit weights: see the module docstring
_INT8_LEVELS = 127
# Input rows of each calibration batch kept to choose each product's form and rank the products.
_SAMPLED_ROWS = 128
# Activations `_QuantizedMatMul` fuses, by the TensorFlow op name it takes in `fused_ops`.
_FUSED_ACTIVATIONS = {
    "GeluApproximate": lambda x: tf.nn.gelu(x, approximate=True),
    "GeluExact": lambda x: tf.nn.gelu(x, approximate=False),
    "Relu": tf.nn.relu,
    "Tanh": tf.tanh,
    "Sigmoid": tf.sigmoid,
}


class Int8UnavailableError(RuntimeError):
    """This TensorFlow cannot run int8 products through oneDNN's `_QuantizedMatMul`."""


@dataclasses.dataclass(frozen=True)
class Int8Product:
    """One matrix product in int8: inputs divided by `smoothing` (per input channel; None: not
    divided), clipped to [-input_limit, input_limit] and rounded to 127 steps each side; int8
    `weights` `[in, out]` (the kernel times `smoothing`, per output column) standing for
    `weight_ranges`; `error`, its relative output error on the calibration inputs;
    `kernel_sum`, the sum of |kernel| it was made from."""

    input_limit: float
    smoothing: object
    weights: object
    weight_ranges: object
    error: float
    kernel_sum: float


@dataclasses.dataclass(frozen=True)
class Int8Calibration:
    """What `calibrate_int8` measured: each int8 product's form (`products`, by layer path), the
    products left in float32 (`in_float`), and how close the int8 embeddings came to float32 on
    the held-out calibration texts."""

    products: dict
    in_float: tuple
    texts: int
    held_out_texts: int
    min_cosine: float
    mean_cosine: float

    def describe(self):
        """The facts an export's metadata records."""
        return {
            "op": INT8_MATMUL_OP, "tensorflow": tf.__version__, "int8_matmuls": len(self.products),
            "float32_matmuls": list(self.in_float),
            "smoothed_matmuls": sum(product.smoothing is not None for product in self.products.values()),
            "weight_bits": int(math.log2(WEIGHT_LEVELS + 1)) + 1,
            "calibration_texts": self.texts, "held_out_texts": self.held_out_texts,
            "min_cosine_to_float32": round(self.min_cosine, 6), "mean_cosine_to_float32": round(self.mean_cosine, 6),
        }


@functools.cache
def check_int8_kernel():
    """Returns None if this TensorFlow runs `_QuantizedMatMul` correctly; else raises
    `Int8UnavailableError` in one line.

    Example:
    >>> check_int8_kernel()  # TensorFlow 2.21's CPU build has it
    """
    checked = ", ".join(CHECKED_TENSORFLOW_VERSIONS)
    rng = np.random.default_rng(0)
    x, kernel = rng.standard_normal([16, 32]).astype(np.float32), rng.standard_normal([32, 8]).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32)
    expected = x @ kernel + bias
    form = _int8_form(Int8Product(float(np.abs(x).max()), None, *quantize_weights(kernel), 0.0, 0.0))
    try:
        got = tf.function(lambda x: form(x, None, tf.constant(bias), None))(tf.constant(x)).numpy()
    except (tf.errors.OpError, TypeError, ValueError) as error:
        if "not registered" in str(error):  # what importing an op this TensorFlow lacks raises
            raise Int8UnavailableError(
                f"This TensorFlow ({tf.__version__}) has no {INT8_MATMUL_OP} op (oneDNN's int8 matrix product, "
                f"checked on TensorFlow {checked}): int8 export needs TensorFlow's oneDNN CPU build; "
                "export in float32 or bfloat16 instead."
            ) from None
        raise Int8UnavailableError(
            f"{INT8_MATMUL_OP} failed on this TensorFlow ({tf.__version__}; checked on {checked}): "
            f"{str(error).splitlines()[0]}"
        ) from None
    error = np.abs(got - expected).max() / np.abs(expected).max()
    if not error < 0.05:
        raise Int8UnavailableError(
            f"{INT8_MATMUL_OP} computes wrong products on this TensorFlow ({tf.__version__}; checked on "
            f"{checked}): relative error {error:.3g} on a test product; export in float32 or bfloat16 instead."
        )


def quantize_weights(kernel):
    """`(int8 [in, out], float32 [out])`: `kernel` rounded per output column to
    `WEIGHT_LEVELS` steps each side of zero, and the float range each column's
    127 stands for (what `_QuantizedMatMul` reads as the weights' max).

    Example:
    >>> q, ranges = quantize_weights(np.array([[0.5, -2.0], [0.25, 1.0]], np.float32))
    >>> q.tolist(), ranges.astype(float).round(4).tolist()
    ([[63, -63], [32, 32]], [1.0079, 4.0317])
    """
    kernel = np.asarray(kernel, np.float32)
    column_max = np.maximum(np.abs(kernel).max(axis=0), np.finfo(np.float32).tiny)
    quantized = np.clip(np.rint(kernel / column_max * WEIGHT_LEVELS), -WEIGHT_LEVELS, WEIGHT_LEVELS)
    return quantized.astype(np.int8), (column_max * _INT8_LEVELS / WEIGHT_LEVELS).astype(np.float32)


def quantizable_layers(model):
    """The layers of `model` whose matrix products int8 can take: the fused `Dense` and
    `EinsumDense` layers (`keras_siamese.layers.fusion`) without LoRA or Keras quantisation."""
    return [
        layer for layer in [model, *tf.train.TrackableView(model).descendants()]
        if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)) and is_fused(layer)
        and not layer.lora_enabled and layer.quantization_mode is None
    ]


def calibrate_int8(model, texts, *, min_cosine=0.99, batch_size=32, held_out_share=0.5):
    """Measures `model`'s int8 calibration on `texts`; returns an `Int8Calibration`.

    The first `1 - held_out_share` of the texts give each product's inputs:
    for each product, the smoothing strength (`SMOOTHING_STRENGTHS`, SmoothQuant:
    input-channel outliers moved into the weights) and clipping percentile
    (`CLIP_PERCENTILES`) whose int8 output errs least on them is chosen. The
    rest of the texts measure the whole: while one of them is further than
    `min_cosine` from its float32 embedding, the products that err most go
    back to float32, a few at a time.
    A few hundred texts like those the model will serve are enough (the main
    job takes them from the training data).

    Args:
        model: a token-level model with a `preprocessor`
            (`SentenceEmbedder.from_encoder`) whose encoder is fused (all
            `keras_siamese` encoders are).
        texts: a list of at least 2 non-empty `str`.
        min_cosine: the least cosine to float32 any held-out text may have.
        batch_size: texts per calibration call.
        held_out_share: the share of `texts` that measures the choices.

    Example:
    >>> calibration = calibrate_int8(model, texts[:512])  # doctest: +SKIP
    >>> calibration.min_cosine >= 0.99  # doctest: +SKIP
    True
    """
    from keras_siamese.inference import encode
    from keras_siamese.precision import computing_in

    check_int8_kernel()
    texts = _check_calibration_texts(texts)
    if not 0 < held_out_share < 1:
        raise ValueError(f"held_out_share must be between 0 and 1, got {held_out_share!r}.")
    if not (isinstance(min_cosine, (int, float)) and -1 <= min_cosine <= 1):
        raise ValueError(f"min_cosine must be a number from -1 to 1, got {min_cosine!r}.")
    preprocessor = _preprocessor(model)
    layers = quantizable_layers(model)
    if not layers or not fused_graph_enabled():
        raise ValueError(
            f"{getattr(model, 'name', model)!r} has no fused matrix products to quantise: int8 needs an encoder "
            "built by keras_siamese (TextEncoder, AlbertEncoder) with the fused graph on "
            "(not KERAS_SIAMESE_FUSED_GRAPH=0)."
        )
    split = max(1, min(len(texts) - 1, round(len(texts) * (1 - held_out_share))))
    statistics, held_out = texts[:split], texts[split:]
    recorder = _InputRecorder(layers)
    with computing_in(model, "float32"):
        with matmul_forms({layer: recorder.form(layer) for layer in layers}):
            for start in range(0, len(statistics), batch_size):
                model(preprocessor(tf.constant(statistics[start : start + batch_size])), training=False)
        reference = encode(_text_function(model, preprocessor), held_out, batch_size=batch_size)
        products = recorder.products()

        def cosines(in_float):
            calibration = Int8Calibration({path: product for path, product in products.items() if path not in in_float},
                                          tuple(in_float), len(statistics), len(held_out), math.nan, math.nan)
            with int8_matmuls(model, calibration):
                embeddings = encode(_text_function(model, preprocessor), held_out, batch_size=batch_size)
            return calibration, _row_cosines(embeddings, reference)

        calibration, measured = cosines(())
        worst_first = sorted(products, key=lambda path: products[path].error, reverse=True)
        step = max(1, math.ceil(len(worst_first) / 12))
        while measured.min() < min_cosine and len(calibration.in_float) < len(worst_first):
            calibration, measured = cosines(worst_first[: len(calibration.in_float) + step])
    return dataclasses.replace(calibration, min_cosine=float(measured.min()), mean_cosine=float(measured.mean()))


@contextlib.contextmanager
def int8_matmuls(model, calibration):
    """Within the block, graphs traced from `model` compute every calibrated matrix product in
    int8 (`QuantizeV2` + `_QuantizedMatMul`); the rest of the graph is unchanged. Trace in
    float32 (`keras_siamese.precision.computing_in(model, "float32")`).

    Example:
    >>> with int8_matmuls(model, calibrate_int8(model, texts)):  # doctest: +SKIP
    ...     serve = tf.function(lambda tokens: model(tokens)).get_concrete_function(specs)
    """
    check_int8_kernel()
    layers = {layer.path: layer for layer in quantizable_layers(model)}
    missing = sorted(set(calibration.products) - set(layers))
    if missing:
        raise ValueError(f"The calibration names layers {getattr(model, 'name', model)!r} lacks: {', '.join(missing)}.")
    changed = [path for path, product in calibration.products.items()
               if not np.isclose(np.abs(layers[path].kernel.numpy()).sum(), product.kernel_sum, rtol=1e-6)]
    if changed:
        raise ValueError(
            f"The calibration was measured on other weights than {getattr(model, 'name', model)!r} has "
            f"({changed[0]}): calibrate this model (calibrate_int8)."
        )
    forms = {layers[path]: _int8_form(product) for path, product in calibration.products.items()}
    with matmul_forms(forms):
        yield model


def _int8_form(product):
    """A `matmul_forms` form: `x` (divided by the smoothing) quantised to int8, times the int8
    weights, plus the bias and the activation, as one `_QuantizedMatMul`."""
    limit = max(float(product.input_limit), 1e-6)
    weights, weight_ranges = product.weights, product.weight_ranges

    def form(x, kernel, bias, activation):
        del kernel  # the int8 weights stand for it
        if product.smoothing is not None:
            x = x * tf.constant(1.0 / product.smoothing, tf.float32)
        # narrow_range: [-127, 127] over [-limit, limit], the scale the product reads from the range
        quantized = tf.raw_ops.QuantizeV2(input=x, min_range=-limit, max_range=limit, T=tf.qint8, mode="SCALED",
                                          round_mode="HALF_TO_EVEN", narrow_range=True)
        fused_activation = _fused_activation_name(activation)
        bias = tf.zeros([weights.shape[1]], tf.float32) if bias is None else tf.cast(bias, tf.float32)
        inputs = [
            quantized.output, tf.bitcast(tf.constant(weights), tf.qint8), bias,
            quantized.output_min, quantized.output_max, tf.constant(-weight_ranges), tf.constant(weight_ranges),
        ]
        y = _quantized_matmul(inputs, ["BiasAdd", *([fused_activation] if fused_activation else []), "Dequantize"])
        y = tf.ensure_shape(y, [None, weights.shape[1]])
        return y if fused_activation or activation is None else activation(y)

    return form


def _quantized_matmul(inputs, fused_ops):
    """`_QuantizedMatMul(inputs)` (qint8 x qint8, float32 out) in the graph being traced.

    The op has no Python wrapper (not in `tf.raw_ops`): it is imported as a one-node GraphDef whose
    inputs are mapped to `inputs`, so only public TensorFlow APIs are used; `check_int8_kernel`
    refuses, in one line, a TensorFlow where this no longer yields a correct product."""
    attr = tf.compat.v1.AttrValue
    types = [tensor.dtype.as_datatype_enum for tensor in inputs]
    qint8, float32 = tf.qint8.as_datatype_enum, tf.float32.as_datatype_enum
    graph = tf.compat.v1.GraphDef()
    for index, dtype in enumerate(types):
        graph.node.add(name=f"input{index}", op="Placeholder", attr={"dtype": attr(type=dtype)})
    graph.node.add(name="product", op=INT8_MATMUL_OP, input=[f"input{index}" for index in range(len(types))], attr={
        "Tdevice_inputs": attr(list=attr.ListValue(type=types)),
        "Tdevice_outputs": attr(list=attr.ListValue(type=[float32])),
        "Thost_inputs": attr(list=attr.ListValue()), "Thost_outputs": attr(list=attr.ListValue()),
        "T1": attr(type=qint8), "T2": attr(type=qint8), "Tbias": attr(type=float32), "Tout": attr(type=float32),
        "U": attr(type=float32), "fused_ops": attr(list=attr.ListValue(s=[op.encode() for op in fused_ops])),
        "input_quant_mode": attr(s=b"SCALED"), "output_quant_mode": attr(s=b"SCALED"),
        "transpose_a": attr(b=False), "transpose_b": attr(b=False),
        "is_weight_const": attr(b=True), "is_bias_const": attr(b=True), "leakyrelu_alpha": attr(f=0.2),
    })
    (product,) = tf.graph_util.import_graph_def(
        graph, input_map={f"input{index}": tensor for index, tensor in enumerate(inputs)},
        return_elements=["product:0"], name="int8_matmul")
    return product


def _fused_activation_name(activation):
    """The `fused_ops` name of the activation `_QuantizedMatMul` can fuse that `activation`
    computes (compared on probe values), else None (a linear or another activation)."""
    if activation is None:
        return None
    with tf.init_scope():  # eagerly, outside the graph being traced
        probe = tf.constant(np.linspace(-6.0, 6.0, 97), tf.float32)
        try:
            values = np.asarray(activation(probe))
        except Exception:  # not a plain elementwise function of one tensor: computed after the product
            return None
        for name, candidate in _FUSED_ACTIVATIONS.items():
            if values.shape == (97,) and np.allclose(values, candidate(probe).numpy(), rtol=1e-5, atol=1e-6):
                return name
    return None


class _InputRecorder:
    """Records, eagerly, each layer's largest |input| per channel, a sample of its input rows and
    its 2-D kernel; then chooses each product's int8 form from them."""

    def __init__(self, layers):
        self.paths = {id(layer): layer.path for layer in layers}
        self.channel_max, self.rows, self.kernels = {}, {}, {}
        self.rng = np.random.default_rng(0)

    def form(self, layer):
        path = self.paths[id(layer)]

        def record(x, kernel, bias, activation):
            x = x.numpy()
            previous = self.channel_max.get(path, 0.0)
            self.channel_max[path] = np.maximum(previous, np.abs(x).max(axis=0))
            sampled = self.rng.choice(len(x), min(len(x), _SAMPLED_ROWS), replace=False)
            self.rows.setdefault(path, []).append(x[sampled])
            self.kernels[path] = kernel.numpy()
            return fused_matmul(x, kernel, bias, activation)

        return record

    def products(self):
        """{path: the `Int8Product` with the least output error on the sampled rows} for every
        layer reached, over `SMOOTHING_STRENGTHS` x `CLIP_PERCENTILES`. Layers fed the same input
        (attention's query, key and value: equal per-channel maxima over every batch) share one
        smoothing and input range, chosen for their kernels side by side, so their `Mul` and
        `QuantizeV2` are identical nodes that TensorFlow's graph optimiser computes once."""
        groups = {}
        for path in self.kernels:
            groups.setdefault(self.channel_max[path].tobytes(), []).append(path)
        products = {}
        for paths in groups.values():
            kernels = [self.kernels[path] for path in paths]
            shared = _best_product(np.concatenate(self.rows[paths[0]]), self.channel_max[paths[0]],
                                   np.concatenate(kernels, axis=1))
            ends = np.cumsum([kernel.shape[1] for kernel in kernels])
            for path, kernel, end in zip(paths, kernels, ends):
                columns = slice(end - kernel.shape[1], end)
                products[path] = dataclasses.replace(
                    shared, weights=shared.weights[:, columns], weight_ranges=shared.weight_ranges[columns],
                    kernel_sum=float(np.abs(kernel).sum()))
        return products


def _best_product(rows, channel_max, kernel):
    exact = rows @ kernel
    norm = max(float(np.linalg.norm(exact)), np.finfo(np.float32).tiny)
    best = None
    for strength in SMOOTHING_STRENGTHS:
        smoothing = _smoothing(channel_max, kernel, strength) if strength else None
        divisor = np.ones_like(channel_max) if smoothing is None else smoothing
        weights, weight_ranges = quantize_weights(kernel * divisor[:, None])
        dequantized = weights * (weight_ranges / _INT8_LEVELS)
        scaled = rows / divisor
        largest = float((channel_max / divisor).max())
        for percentile in CLIP_PERCENTILES:
            limit = largest if percentile == 100.0 else min(largest, float(np.percentile(np.abs(scaled), percentile)))
            step = max(limit, 1e-6) / _INT8_LEVELS
            error = float(np.linalg.norm(np.clip(np.rint(scaled / step), -_INT8_LEVELS, _INT8_LEVELS) * step
                                         @ dequantized - exact)) / norm
            if best is None or error < best.error:
                best = Int8Product(limit, smoothing, weights, weight_ranges, error, float(np.abs(kernel).sum()))
    return best


def _smoothing(channel_max, kernel, strength):
    """SmoothQuant's per-input-channel divisor: max|x_j|^strength / max|w_j|^(1 - strength)."""
    weight_max = np.abs(kernel).max(axis=1)
    smoothing = np.where((channel_max > 0) & (weight_max > 0),
                         channel_max ** strength / np.maximum(weight_max, 1e-12) ** (1 - strength), 1.0)
    return np.clip(smoothing, 1e-5, 1e5).astype(np.float32)


def _check_calibration_texts(texts):
    if isinstance(texts, (str, bytes)) or not isinstance(texts, (list, tuple)):
        raise ValueError(f"calibration texts must be a list of str, got {type(texts).__name__}.")
    texts = list(texts)
    bad = next((i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip()), None)
    if bad is not None:
        raise ValueError(f"calibration text {bad} is {texts[bad]!r}: every calibration text must be a non-empty str.")
    if len(texts) < 2:
        raise ValueError(f"int8 calibration needs at least 2 texts, got {len(texts)}.")
    return texts


def _preprocessor(model):
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is None:
        raise ValueError(
            f"int8 calibration needs a token-level model with a preprocessor (SentenceEmbedder.from_encoder); "
            f"{getattr(model, 'name', model)!r} has none."
        )
    return preprocessor


def _text_function(model, preprocessor):
    """strings -> embeddings, traced now (in the matrix-product forms in force)."""
    function = tf.function(lambda text: model(preprocessor(text), training=False),
                           input_signature=[tf.TensorSpec([None], tf.string)])
    function.get_concrete_function()
    return function


def _row_cosines(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)
