"""The encoder's graph in the forms TensorFlow's oneDNN fusions take.

Keras 3 writes a `Dense` on `[batch, length, hidden]` tokens as a 3-D matrix
product, a reshape, a broadcast add and the activation's elementwise ops, and a
`LayerNormalization` as moments, a reciprocal square root and four products.
TensorFlow's graph optimiser (grappler's remapper, then oneDNN) fuses neither:
it takes a 2-D `MatMul` followed by a `BiasAdd` and an activation (GELU
included) as one `_FusedMatMul`, and a layer norm written as `FusedBatchNormV3`
over `[1, rows, hidden, 1]` as one `_MklLayerNorm`. Keras' attention
transposes its scores and masks them with two selects; written as a batch
matrix product, a scalar scale and an additive mask, it runs as one
`_FusedBatchMatMulV2`. `fuse(backbone)` makes the `Dense`, `EinsumDense`,
`LayerNormalization` and `MultiHeadAttention` layers inside a backbone
compute in those forms: same variables, same config, same saved files, the same
numbers to float32 round-off (benchmarks/README.md, "The fused graph").

`matmul_forms` swaps in other forms of those products for a while (the int8
products of `keras_siamese.quantization`); `weights_stored_as` has them read
weights stored in bfloat16 (the bfloat16 export).

Only the layers of the backbone given are changed, and only while fusion is on
(`set_fused_graph(False)` or `KERAS_SIAMESE_FUSED_GRAPH=0` turns it off for the
graphs traced afterwards); any other model keeps Keras' own graph. A layer the
fused forms do not cover (LoRA, quantised, an einsum that is not a matrix
product, a layer norm over several axes or with RMS scaling, attention with
dropout in training, causal or returning its scores) runs Keras' call.

How the layers are changed: each covered layer gets an instance attribute
`call` that Keras' `Layer.__call__` runs in place of the class's `call` (the
way Keras itself wraps each layer's `build`); a `MultiHeadAttention` gets
`_compute_attention`, the method Keras documents for overriding. That relies on the layer
attributes listed in `_REQUIRED_ATTRIBUTES`; when a Keras release renames them,
`fuse` warns once and leaves every layer as Keras wrote it.
"""

import contextlib
import functools
import math
import os
import string
import types
import warnings

import keras
import tensorflow as tf

_ENV_SWITCH = "KERAS_SIAMESE_FUSED_GRAPH"
_enabled = os.environ.get(_ENV_SWITCH, "1").strip().lower() not in ("0", "false", "off", "no")
# The Keras layer attributes the fused calls read, by layer class.
_REQUIRED_ATTRIBUTES = {
    keras.layers.Dense: ("units", "kernel", "bias", "activation", "lora_enabled", "quantization_mode"),
    keras.layers.EinsumDense: ("equation", "kernel", "bias", "activation", "lora_enabled", "quantization_mode"),
    keras.layers.LayerNormalization: ("axis", "epsilon", "gamma", "beta", "rms_scaling", "compute_dtype"),
    keras.layers.MultiHeadAttention: ("_compute_attention", "_inverse_sqrt_key_dim", "_dropout", "_attention_axes"),
}
_warned = []
# {id(layer): form}: the matrix products `matmul_forms` swaps in, within its block.
_matmul_forms = {}
# {id(variable): copy in another dtype}: what fused layers read within `weights_stored_as`'s block.
_stored_copies = {}
_BATCH_NORM_DTYPES = (tf.float32, tf.bfloat16, tf.float16)


def set_fused_graph(enabled):
    """Turns the fused forms on or off for every graph traced afterwards (default: on, unless
    the environment sets `KERAS_SIAMESE_FUSED_GRAPH=0`). Graphs already traced keep their form:
    set it before building or loading a model.

    Example:
    >>> set_fused_graph(False)  # Keras' own graph, e.g. to compare
    >>> fused_graph_enabled()
    False
    >>> set_fused_graph(True)
    """
    global _enabled
    if not isinstance(enabled, bool):
        raise TypeError(f"set_fused_graph takes True or False, got {enabled!r}.")
    _enabled = enabled


def fused_graph_enabled():
    """Whether graphs traced now take the fused forms."""
    return _enabled


def fuse(layer):
    """Makes every `Dense`, `EinsumDense`, `LayerNormalization` and `MultiHeadAttention` inside
    `layer` (a keras-hub backbone, or any layer or model) compute in the forms oneDNN fuses;
    returns `layer`.

    Calling it twice is harmless. Weights, config and saved files do not change.

    Example:
    >>> backbone = keras_hub.models.BertBackbone(100, 2, 2, 32, 64)  # doctest: +SKIP
    >>> fuse(backbone)  # doctest: +SKIP
    """
    for sublayer in [layer, *tf.train.TrackableView(layer).descendants()]:
        if type(sublayer) in _FUSED_FORMS and sublayer.built and not is_fused(sublayer) and _readable(sublayer):
            name, method = _fused_method(sublayer)
            # A method bound to the layer: a deep copy of the layer gets one bound to the copy.
            object.__setattr__(sublayer, name, types.MethodType(method, sublayer))
    return layer


def is_fused(layer):
    """Whether `fuse` changed `layer`'s call (its attention, for a `MultiHeadAttention`)."""
    if type(layer) not in _FUSED_FORMS:
        return False
    name, method = _fused_method(layer)
    return getattr(vars(layer).get(name), "__func__", None) is method


def _fused_method(layer):
    """(the name of the method `fuse` replaces on `layer`, what replaces it)."""
    if type(layer) is keras.layers.MultiHeadAttention:
        return "_compute_attention", _fused_or_keras_attention
    return "call", _fused_or_keras_call


def _fused_or_keras_call(layer, inputs, *args, **kwargs):
    """A fused layer's call: the fused form while fusion is on and covers the call, else Keras' own."""
    if _enabled:
        outputs = _FUSED_FORMS[type(layer)](layer, inputs)
        if outputs is not None:
            return outputs
    return type(layer).call(layer, inputs, *args, **kwargs)


def _fused_or_keras_attention(layer, query, key, value, attention_mask=None, training=None,
                              return_attention_scores=False, use_causal_mask=False):
    """A fused `MultiHeadAttention`'s attention (Keras' overridable `_compute_attention`)."""
    arguments = (query, key, value, attention_mask, training, return_attention_scores, use_causal_mask)
    if _enabled:
        outputs = _attention(layer, *arguments)
        if outputs is not None:
            return outputs
    return type(layer)._compute_attention(layer, *arguments)


def _dense(layer, inputs):
    """`Dense` on a rank >= 3 input as a 2-D MatMul + BiasAdd + activation (`_FusedMatMul`)."""
    if not _dense_tensor(inputs) or inputs.shape.rank is None or inputs.shape.rank < 3:
        return None
    if not _plain_matmul_layer(layer):
        return None
    bias = None if layer.bias is None else _read(layer.bias, inputs.dtype)
    x = tf.reshape(inputs, [-1, inputs.shape[-1]])
    x = _matmul(layer, x, _read(layer.kernel, inputs.dtype), bias)
    return tf.reshape(x, tf.concat([tf.shape(inputs)[:-1], [layer.units]], 0))


def _einsum_dense(layer, inputs):
    """`EinsumDense` whose equation is a matrix product over the input's trailing axes
    (attention's `abc,cde->abde` and `abcd,cde->abe`) as a 2-D MatMul + BiasAdd + activation."""
    if not _dense_tensor(inputs) or not _plain_matmul_layer(layer):
        return None
    contracted = _contracted_axes(layer.equation)
    if contracted is None:
        return None
    kernel_shape = tuple(layer.kernel.shape)
    if layer.bias is not None and tuple(layer.bias.shape) != kernel_shape[contracted:]:
        return None  # a bias over only some of the output axes
    if inputs.shape.rank != len(layer.equation.split(",")[0]):
        return None
    rows = math.prod(kernel_shape[:contracted])
    kernel = tf.reshape(_read(layer.kernel, inputs.dtype), [rows, -1])
    bias = None if layer.bias is None else tf.reshape(_read(layer.bias, inputs.dtype), [-1])
    x = tf.reshape(inputs, [-1, rows])
    x = _matmul(layer, x, kernel, bias)
    batch_shape = tf.shape(inputs)[: inputs.shape.rank - contracted]
    return tf.reshape(x, tf.concat([batch_shape, kernel_shape[contracted:]], 0))


def _layer_normalization(layer, inputs):
    """`LayerNormalization` over the last axis as tf.keras 2 wrote it: `FusedBatchNormV3` on
    `[1, rows, hidden, 1]` (`_MklLayerNorm` when served), statistics in float32. On CPUs only:
    GPU batch-norm kernels raise a small epsilon (BERT's 1e-12) to cuDNN's 1e-5."""
    axis = layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)
    rank = inputs.shape.rank
    if not _dense_tensor(inputs) or inputs.dtype not in _BATCH_NORM_DTYPES:
        return None
    if axis is None or rank is None or layer.rms_scaling or axis not in (-1, rank - 1) or _has_gpu():
        return None
    shape = tf.shape(inputs)
    rows = tf.reduce_prod(shape[:-1])
    hidden = inputs.shape[-1] if inputs.shape[-1] is not None else shape[-1]
    # Statistics in float32 for float16/bfloat16 inputs too; the layer's epsilon as it is.
    normalized = tf.raw_ops.FusedBatchNormV3(
        x=tf.reshape(inputs, [1, rows, hidden, 1]),
        scale=tf.ones([rows], tf.float32),
        offset=tf.zeros([rows], tf.float32),
        mean=tf.constant([], tf.float32),
        variance=tf.constant([], tf.float32),
        epsilon=layer.epsilon,
        data_format="NCHW",
        is_training=True,
    ).y
    y = tf.reshape(normalized, shape)
    if layer.gamma is not None:
        y = y * _read(layer.gamma, y.dtype)
    if layer.beta is not None:
        y = y + _read(layer.beta, y.dtype)
    return tf.cast(y, layer.compute_dtype)


def _attention(layer, query, key, value, attention_mask, training, return_attention_scores=False,
               use_causal_mask=False):
    """Dot-product attention over `[batch, length, heads, size]` projections as two batch matrix
    products, the scores scaled and masked by an additive bias between them (the pattern the
    remapper fuses into one `_FusedBatchMatMulV2`): no transposed scores, no selects. Keras' own
    where it would add dropout, return the scores, or mask causally; a query whose every key is
    masked (a padding position, which pooling leaves out) averages the values where Keras gives 0."""
    if return_attention_scores or use_causal_mask or (training and layer._dropout > 0):
        return None
    if tuple(layer._attention_axes) != (1,) or not all(
            _dense_tensor(part) and part.shape.rank == 4 for part in (query, key, value)):
        return None
    heads_first = functools.partial(tf.transpose, perm=[0, 2, 1, 3])  # [batch, heads, length, size]
    scores = tf.matmul(heads_first(query), heads_first(key), transpose_b=True)
    scores = scores * tf.cast(layer._inverse_sqrt_key_dim, scores.dtype)
    if attention_mask is not None:
        mask = tf.cast(attention_mask, tf.bool)
        mask = tf.expand_dims(mask, 1) if mask.shape.rank == 3 else mask  # [batch, 1, query, key]
        # A select, not (1 - mask) * large: grappler merges the layers' equal biases into one node,
        # and a shared Mul there stops the remapper fusing all but one layer's product (C++ sessions).
        scores = scores + tf.where(mask, tf.zeros([], scores.dtype), _large_negative(scores.dtype))
    probabilities = tf.nn.softmax(scores)
    return heads_first(tf.matmul(probabilities, heads_first(value))), None


def _large_negative(dtype):
    """What Keras' masked softmax puts at masked positions."""
    return tf.constant(-3e4 if dtype == tf.float16 else -1e9, dtype)


_FUSED_FORMS = {
    keras.layers.Dense: _dense,
    keras.layers.EinsumDense: _einsum_dense,
    keras.layers.LayerNormalization: _layer_normalization,
    keras.layers.MultiHeadAttention: _attention,
}


@contextlib.contextmanager
def matmul_forms(forms):
    """Within the block, each fused layer in `forms` (`{layer: form}`) computes its 2-D matrix
    product as `form(x, kernel, bias, activation)` returns it: `x` the `[rows, in]` input,
    `kernel` the layer's `[in, out]` kernel and `bias` its `[out]` bias (or None) in `x`'s
    dtype, `activation` the layer's. Graphs traced inside the block keep the forms; eager calls
    use them while it lasts. `keras_siamese.quantization` swaps in int8 products this way.

    Example:
    >>> def traced(x, kernel, bias, activation):  # doctest: +SKIP
    ...     print(x.shape, kernel.shape)
    ...     return fused_matmul(x, kernel, bias, activation)
    >>> with matmul_forms({dense: traced}):  # doctest: +SKIP
    ...     model(tokens)
    """
    previous = {id(layer): _matmul_forms.get(id(layer)) for layer in forms}
    _matmul_forms.update({id(layer): form for layer, form in forms.items()})
    try:
        yield
    finally:
        for key, form in previous.items():
            if form is None:
                del _matmul_forms[key]
            else:
                _matmul_forms[key] = form


def _matmul(layer, x, kernel, bias):
    return _matmul_forms.get(id(layer), fused_matmul)(x, kernel, bias, layer.activation)


def fused_matmul(x, kernel, bias, activation):
    """`activation(x @ kernel + bias)` as a 2-D `MatMul`, `BiasAdd` and the activation: the
    pattern TensorFlow's remapper fuses into one `_FusedMatMul` (the form `fuse` gives layers).

    Example:
    >>> fused_matmul(tf.ones([2, 3]), tf.ones([3, 4]), tf.zeros([4]), None).shape
    TensorShape([2, 4])
    """
    x = tf.matmul(x, kernel)
    if bias is not None:
        x = tf.nn.bias_add(x, bias)
    return x if activation is None else activation(x)


@functools.cache
def _has_gpu():
    return bool(tf.config.list_physical_devices("GPU"))


def _dense_tensor(inputs):
    return isinstance(inputs, tf.Tensor)  # not ragged or sparse


def _plain_matmul_layer(layer):
    return not layer.lora_enabled and layer.quantization_mode is None


def _contracted_axes(equation):
    """For an einsum `batch+contracted, contracted+free -> batch+free` (plain letters, no
    ellipsis, no transposition): the number of contracted axes, else None."""
    if "." in equation or "->" not in equation:
        return None
    operands, output = equation.replace(" ", "").split("->")
    if operands.count(",") != 1:
        return None
    inputs, kernel = operands.split(",")
    if not all(set(part) <= set(string.ascii_letters) for part in (inputs, kernel, output)):
        return None
    contracted = [letter for letter in kernel if letter in inputs and letter not in output]
    count = len(contracted)
    if count == 0:
        return None
    batch, free = inputs[: len(inputs) - count], kernel[count:]
    if inputs[len(batch):] != kernel[:count] or output != batch + free or set(batch) & set(kernel):
        return None
    return count


@contextlib.contextmanager
def weights_stored_as(layer, dtype):
    """Within the block, the fused layers inside `layer` read their weights from copies stored
    in `dtype` (made once, on entry) where Keras' mixed precision casts each float32 variable on
    every call; yields the copies, a `tf.Module`, for the caller to save beside the graphs traced
    in the block (a bfloat16 SavedModel: half the bytes per read, no `Cast` per weight).

    Example:
    >>> with computing_in(model, "bfloat16"), weights_stored_as(model, "bfloat16") as copies:  # doctest: +SKIP
    ...     serve = tf.function(model).get_concrete_function(specs)
    """
    dtype = tf.as_dtype(dtype)
    copies = tf.Module(name=f"weights_{dtype.name}")
    variables = list({
        id(variable): variable for sublayer in [layer, *tf.train.TrackableView(layer).descendants()]
        if is_fused(sublayer) for variable in sublayer.weights
        if variable.dtype == tf.float32 and id(variable) not in _stored_copies
    }.values())
    copies.stored = [tf.Variable(tf.cast(variable, dtype), trainable=False, name=variable.path.replace("/", "_"))
                     for variable in variables]
    _stored_copies.update({id(variable): copy for variable, copy in zip(variables, copies.stored)})
    try:
        yield copies
    finally:
        for variable in variables:
            del _stored_copies[id(variable)]


def _read(variable, dtype):
    copy = _stored_copies.get(id(variable))
    return copy if copy is not None and copy.dtype == dtype else tf.cast(variable, dtype)


def _readable(layer):
    """Whether `layer` has the attributes its fused call reads; warns once (and the layer keeps
    Keras' call) where a Keras release renamed them."""
    missing = [name for name in _REQUIRED_ATTRIBUTES[type(layer)] if not hasattr(layer, name)]
    if missing and not _warned:
        _warned.append(True)
        warnings.warn(
            f"keras_siamese.layers.fusion: this Keras ({keras.__version__}) {type(layer).__name__} has no "
            f"{', '.join(missing)}; such layers run Keras' own graph (unfused: slower on CPUs).",
            UserWarning, stacklevel=3,
        )
    return not missing
