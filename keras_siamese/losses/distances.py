"""Pairwise distances and input checks shared by the metric-learning losses.

All maths runs in float32 whatever the embedding dtype; callers cast results back.
"""

import math

import numpy as np
import tensorflow as tf

DISTANCES = ("L2", "squared-L2", "angular")


def pairwise_distance(embeddings, distance="L2"):
    """Returns the `[B, B]` float32 matrix of distances between rows of `embeddings`.

    Args:
        embeddings: `[B, D]` float tensor.
        distance: `"L2"` (Euclidean), `"squared-L2"`, `"angular"` (one minus the
            cosine of the L2-normalised vectors, clamped at 0) or a callable mapping
            `[B, D]` float32 embeddings to a `[B, B]` distance matrix.

    The diagonal is exactly zero. Euclidean distances are computed as
    `sqrt(max(|x|^2 + |y|^2 - 2 x.y, 0))` with exact zeros kept at zero, so the
    gradient stays finite for identical embeddings (this is the formulation of
    tensorflow-addons' `pairwise_distance`, so values agree with it).

    Example:
    >>> pairwise_distance(tf.constant([[0.0, 0.0], [3.0, 4.0]])).numpy()
    array([[0., 5.],
           [5., 0.]], dtype=float32)
    """
    embeddings = tf.cast(embeddings, tf.float32)
    if callable(distance):
        return tf.cast(distance(embeddings), tf.float32)
    check_distance(distance)
    if distance == "angular":
        unit = tf.math.l2_normalize(embeddings, axis=1)
        pdist = tf.maximum(1.0 - tf.matmul(unit, unit, transpose_b=True), 0.0)
        return tf.linalg.set_diag(pdist, tf.zeros_like(pdist[:, 0]))
    return _euclidean_distances(embeddings, squared=distance == "squared-L2")


def _euclidean_distances(embeddings, squared):
    """Euclidean (or squared) distances with a hand-written gradient that keeps only
    the `[B, B]` result alive, not the chain of intermediates autodiff would store.
    The elementwise work is compiled with XLA, which fuses it into single passes."""

    @tf.custom_gradient
    def distances(x):
        # stop_gradient keeps tapes from recording inside the compiled functions.
        x = tf.stop_gradient(x)
        pdist = _euclidean_forward(x, squared)

        def gradient(upstream):
            scale, totals = _euclidean_scale(pdist, upstream, squared)
            # scale^T x as (x^T scale)^T: TensorFlow's fast form (not XLA's).
            transposed_product = tf.transpose(tf.matmul(x, scale, transpose_a=True))
            return 2.0 * (totals[:, None] * x - tf.matmul(scale, x) - transposed_product)

        return pdist, gradient

    return distances(embeddings)


@tf.function(jit_compile=True, reduce_retracing=True)
def _euclidean_forward(x, squared):
    squared_norms = tf.reduce_sum(tf.square(x), axis=1)
    gram = tf.matmul(x, x, transpose_b=True)
    pdist = tf.maximum(squared_norms[:, None] + squared_norms[None, :] - 2.0 * gram, 0.0)
    pdist = tf.linalg.set_diag(pdist, tf.zeros_like(squared_norms))
    return pdist if squared else tf.sqrt(pdist)


@tf.function(jit_compile=True, reduce_retracing=True)
def _euclidean_scale(pdist, upstream, squared):
    """d/d(squared distance), zero where the distance is zero (clamped or diagonal),
    and its row plus column sums."""
    if squared:
        scale = tf.where(pdist > 0.0, upstream, 0.0)
    else:
        scale = tf.where(pdist > 0.0, upstream / (2.0 * tf.where(pdist > 0.0, pdist, 1.0)), 0.0)
    return scale, tf.reduce_sum(scale, axis=1) + tf.reduce_sum(scale, axis=0)


def check_margin(margin, what="margin"):
    """Returns `margin` if it is a finite number >= 0 (a tensor is checked when eager);
    raises ValueError otherwise.

    Example:
    >>> check_margin(0.5)
    0.5
    """
    if isinstance(margin, (bool, str)) or not isinstance(margin, (int, float, np.number, tf.Tensor, np.ndarray)):
        raise ValueError(f"{what} must be a finite number >= 0, got {margin!r}.")
    if isinstance(margin, tf.Tensor) and not tf.executing_eagerly():
        return margin
    value = float(margin)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{what} must be a finite number >= 0, got {margin!r}.")
    return margin


def check_distance(distance):
    """Raises ValueError unless `distance` is a known name or a callable."""
    if not callable(distance) and distance not in DISTANCES:
        raise ValueError(
            f"Unknown distance {distance!r}: expected one of {DISTANCES} or a callable "
            "mapping [B, D] embeddings to a [B, B] distance matrix."
        )


def check_embeddings(embeddings, rank=2, what="embeddings"):
    """Converts `embeddings` to a float tensor of the given rank, checking it is finite.

    Raises ValueError (eagerly) for a wrong rank, a non-float dtype or non-finite
    values; inside a `tf.function` the finiteness check becomes a runtime assertion.
    """
    embeddings = tf.convert_to_tensor(embeddings)
    if not embeddings.dtype.is_floating:
        raise ValueError(f"{what} must be a float tensor, got dtype {embeddings.dtype.name}.")
    if embeddings.shape.rank is not None and embeddings.shape.rank != rank:
        raise ValueError(
            f"{what} must have rank {rank}, got shape {embeddings.shape}."
        )
    message = f"{what} contain NaN or infinite values."
    if tf.executing_eagerly():
        if not bool(tf.reduce_all(tf.math.is_finite(embeddings))):
            raise ValueError(message)
        return embeddings
    check = tf.debugging.Assert(
        tf.reduce_all(tf.math.is_finite(embeddings)), [message]
    )
    with tf.control_dependencies([check]):
        return tf.identity(embeddings)


def check_labels(labels, batch_size, what="labels"):
    """Returns class labels `[B]` as int64 from a `[B]` or `[B, 1]` integer tensor or
    a float tensor holding whole numbers; raises ValueError otherwise.

    `batch_size` is the embeddings' first dimension (int or scalar tensor).
    """
    labels = tf.convert_to_tensor(labels)
    if labels.dtype.is_complex or labels.dtype == tf.string or labels.dtype == tf.bool:
        raise ValueError(f"{what} must be integers, got dtype {labels.dtype.name}.")
    rank = labels.shape.rank
    if rank is not None and not (
        rank == 1 or (rank == 2 and labels.shape[1] in (1, None))
    ):
        raise ValueError(f"{what} must have shape [B] or [B, 1], got {labels.shape}.")
    static_count = labels.shape[0] if rank else None
    if isinstance(batch_size, int) and static_count is not None and static_count != batch_size:
        raise ValueError(
            f"{what} and embeddings disagree on the batch size: {static_count} labels "
            f"for {batch_size} embeddings."
        )
    labels = tf.reshape(labels, [-1])
    whole = tf.constant(True)
    if labels.dtype.is_floating:
        whole = tf.reduce_all(tf.equal(labels, tf.round(labels)))
    same_size = tf.equal(tf.size(labels, out_type=tf.int64), tf.cast(batch_size, tf.int64))
    not_whole = f"float {what} must hold whole numbers (class ids)."
    mismatch = f"{what} must have one entry per embedding ([B] or [B, 1])."
    if tf.executing_eagerly():
        if not bool(same_size):
            raise ValueError(
                f"{mismatch} Got {int(tf.size(labels))} labels for {int(batch_size)} embeddings."
            )
        if not bool(whole):
            raise ValueError(not_whole)
        return tf.cast(labels, tf.int64)
    checks = [tf.debugging.Assert(same_size, [mismatch]), tf.debugging.Assert(whole, [not_whole])]
    with tf.control_dependencies(checks):
        return tf.cast(labels, tf.int64)


def same_label_mask(labels):
    """`[B, B]` bool: True where the two examples share a label (diagonal included)."""
    return tf.equal(labels[:, None], labels[None, :])
