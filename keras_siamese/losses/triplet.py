"""Triplet losses with online mining over a batch of class-labelled embeddings.

Every example of the batch is an anchor; its positives are the other examples with
the same label, its negatives the examples with a different label. The three losses
differ in which triplets (anchor, positive, negative) they take:

* `triplet_semihard_loss` — for each (anchor, positive) pair, the closest negative
  that is still farther than the positive (FaceNet's semi-hard negative).
* `triplet_batch_hard_loss` — for each anchor, its farthest positive and closest negative.
* `triplet_batch_all_loss` — every valid triplet.

Batches need several examples per class (P classes x K examples, e.g. from
`keras_siamese.data.class_balanced_batches`) or there are no positives to learn from.

`semihard_triplet_terms` mines with `keras_siamese.losses.semihard_mining`
(O(B^2) memory, any device, under `tf.distribute` and inside `jit_compile=True`).
"""

from typing import NamedTuple

import keras
import tensorflow as tf

from keras_siamese.losses.distances import (
    check_distance,
    check_embeddings,
    check_margin,
    check_labels,
    pairwise_distance,
    same_label_mask,
)
from keras_siamese.losses.semihard_mining import semihard_sums, take_columns


class SemihardTripletTerms(NamedTuple):
    """Loss and batch statistics of one semi-hard triplet computation.

    Attributes:
        loss: mean over (anchor, positive) pairs of `max(margin + d_ap - d_an, 0)`.
        active_fraction: fraction of (anchor, positive) pairs whose term is positive.
        mean_positive_distance: mean `d_ap` over the pairs.
        mean_negative_distance: mean `d_an` of the chosen negatives.
        num_pairs: number of (anchor, positive) pairs (int32).

    Only `loss` carries gradients; the statistics are for monitoring.
    """

    loss: tf.Tensor
    active_fraction: tf.Tensor
    mean_positive_distance: tf.Tensor
    mean_negative_distance: tf.Tensor
    num_pairs: tf.Tensor


def _prepare(labels, embeddings, distance):
    """Checks inputs; returns (int64 labels [B], input dtype, float32 pdist [B, B])."""
    check_distance(distance)
    embeddings = check_embeddings(embeddings)
    batch_size = embeddings.shape[0]
    if batch_size is None:
        batch_size = tf.shape(embeddings)[0]
    labels = check_labels(labels, batch_size)
    return labels, embeddings.dtype, pairwise_distance(embeddings, distance)


def semihard_triplet_terms(labels, embeddings, margin=1.0, distance="L2"):
    """Semi-hard triplet loss and its batch statistics from one distance matrix.

    For each anchor `a` and positive `p != a`, the negative `n` is the one with the
    smallest `d(a, n)` strictly greater than `d(a, p)`; when there is none, the
    farthest negative of `a`; when `a` has no negative at all, `d_an = 0`. Values
    equal those of tensorflow-addons' `triplet_semihard_loss`, except that a batch
    without any positive pair gives loss 0 and zero gradients (TFA: NaN).

    Runs in O(B^2) memory and at most O(B^2 log B) time for any label layout,
    eagerly, under `tf.function`, under `tf.distribute` and under `jit_compile=True`.

    Args:
        labels: `[B]` or `[B, 1]` class ids (integers, or floats holding whole numbers).
        embeddings: `[B, D]` float embeddings; float16/bfloat16 are computed in float32.
        margin: margin between positive and negative distances.
        distance: `"L2"`, `"squared-L2"`, `"angular"` or a callable (see `pairwise_distance`).

    Returns:
        `SemihardTripletTerms`; `loss` has the embeddings' dtype, the rest float32.

    Example:
    >>> terms = semihard_triplet_terms([0, 0, 1, 1], [[0., 1.], [0., 2.], [1., 0.], [2., 0.]])
    >>> round(float(terms.loss), 4), float(terms.active_fraction)
    (0.2929, 0.5)
    """
    labels, dtype, pdist = _prepare(labels, embeddings, distance)
    margin = tf.cast(check_margin(margin), tf.float32)
    sums = semihard_sums(labels, pdist, margin)
    denominator = tf.maximum(sums.pairs, 1.0)
    return SemihardTripletTerms(
        loss=tf.cast(sums.hinge / denominator, dtype),
        active_fraction=tf.stop_gradient(sums.active_pairs / denominator),
        mean_positive_distance=tf.stop_gradient(sums.positive_distance / denominator),
        mean_negative_distance=tf.stop_gradient(sums.negative_distance / denominator),
        num_pairs=tf.cast(sums.pairs, tf.int32),
    )


def triplet_semihard_loss(labels, embeddings, margin=1.0, distance="L2"):
    """Triplet loss with semi-hard negative mining (FaceNet; tensorflow-addons' numbers).

    See `semihard_triplet_terms` for the definition and edge cases.

    Example:
    >>> round(float(triplet_semihard_loss([0, 0], [[0., 1.], [1., 0.]])), 4)
    2.4142
    """
    return semihard_triplet_terms(labels, embeddings, margin, distance).loss


def triplet_batch_hard_loss(labels, embeddings, margin=1.0, soft_margin=False, distance="L2"):
    """Batch-hard triplet loss: each anchor with its farthest positive and nearest negative.

    Per anchor `max(margin + d(a, hardest p) - d(a, hardest n), 0)`, or with
    `soft_margin=True` the margin-free `log1p(exp(d_ap - d_an))`, averaged over the
    anchors that have at least one positive and one negative (0, with zero
    gradients, when none has). tensorflow-addons' `triplet_hard_loss` and
    sentence-transformers' `BatchHardTripletLoss` also average over anchors without a
    positive (taking `d_ap = 0`); on P x K batches all three agree.

    Needs P x K batches (K >= 2). The hardest triplets are sensitive to label noise;
    semi-hard mining is the gentler start. Related: `triplet_semihard_loss`,
    `triplet_batch_all_loss`.

    Example:
    >>> round(float(triplet_batch_hard_loss([0, 0, 1], [[0., 0.], [3., 4.], [0., 1.]])), 4)
    3.3787
    """
    check_margin(margin)
    labels, dtype, pdist = _prepare(labels, embeddings, distance)
    same = same_label_mask(labels)
    positive = tf.linalg.set_diag(same, tf.zeros_like(same[:, 0]))
    negative = tf.logical_not(same)
    hardest_positive = tf.reduce_max(tf.where(positive, pdist, 0.0), axis=1)
    hardest_negative = tf.reduce_min(tf.where(negative, pdist, float("inf")), axis=1)
    valid = tf.reduce_any(positive, axis=1) & tf.reduce_any(negative, axis=1)
    gap = hardest_positive - tf.where(valid, hardest_negative, 0.0)
    per_anchor = tf.nn.softplus(gap) if soft_margin else tf.nn.relu(margin + gap)
    per_anchor = tf.where(valid, per_anchor, 0.0)
    count = tf.maximum(tf.reduce_sum(tf.cast(valid, tf.float32)), 1.0)
    return tf.cast(tf.reduce_sum(per_anchor) / count, dtype)


def triplet_batch_all_loss(labels, embeddings, margin=1.0, distance="L2"):
    """Batch-all triplet loss: mean of the positive terms over all valid triplets.

    Over every triplet (a, p, n) with `p != a` sharing a's label and `n` not, the
    term is `max(margin + d_ap - d_an, 0)`; the loss is the mean of the terms that
    are positive (0, with zero gradients, when none is), as sentence-transformers'
    `BatchAllTripletLoss` and Hermans et al.'s "batch all".

    Computed without the `[B, B, B]` tensor: each row's negatives are sorted once and
    prefix sums give every pair's sum over its active negatives, O(B^2 log B).

    Needs P x K batches (K >= 2). Related: `triplet_semihard_loss`, `triplet_batch_hard_loss`.

    Example:
    >>> round(float(triplet_batch_all_loss([0, 0, 1], [[0., 0.], [3., 4.], [0., 1.]])), 4)
    3.3787
    """
    labels, dtype, pdist = _prepare(labels, embeddings, distance)
    margin = tf.cast(check_margin(margin), tf.float32)
    same = same_label_mask(labels)
    negative = tf.logical_not(same)
    positive = tf.linalg.set_diag(same, tf.zeros_like(same[:, 0]))
    infinity = tf.constant(float("inf"))
    order = tf.argsort(tf.where(negative, tf.stop_gradient(pdist), infinity), axis=1)
    negative_sorted = take_columns(negative, order)
    ascending = tf.where(negative_sorted, take_columns(pdist, order), 0.0)
    prefix = tf.pad(tf.cumsum(ascending, axis=1), [[0, 0], [1, 0]])  # prefix[a, k]: k nearest
    threshold = pdist + margin  # a term is positive iff d_an < d_ap + margin
    searchable = tf.where(negative_sorted, tf.stop_gradient(ascending), infinity)
    count = tf.searchsorted(searchable, tf.stop_gradient(threshold), side="left", out_type=tf.int32)
    count = tf.where(positive, count, 0)
    pair_sums = tf.cast(count, tf.float32) * threshold - take_columns(prefix, count)
    total = tf.reduce_sum(tf.where(positive, pair_sums, 0.0))
    num_active = tf.maximum(tf.reduce_sum(tf.cast(count, tf.float32)), 1.0)
    return tf.cast(total / num_active, dtype)


class _TripletLoss(keras.losses.Loss):
    """Base of the Keras wrappers: `y_true` are labels, `y_pred` the embeddings."""

    def __init__(self, margin=1.0, distance="L2", name=None, **kwargs):
        check_distance(distance)
        check_margin(margin)
        super().__init__(name=name, **kwargs)
        self.margin = margin
        self.distance = distance

    def get_config(self):
        config = super().get_config()
        config.update({"margin": self.margin, "distance": self.distance})
        return config


@keras.saving.register_keras_serializable(package="keras_siamese")
class TripletSemiHardLoss(_TripletLoss):
    """Keras loss for `triplet_semihard_loss`: `y_true` labels `[B]`/`[B, 1]`, `y_pred` embeddings `[B, D]`.

    A string `distance` serialises; a callable one does not.

    Example:
    >>> loss = TripletSemiHardLoss(margin=0.5)
    >>> round(float(loss([0, 0, 1, 1], [[0., 1.], [0., 2.], [1., 0.], [2., 0.]])), 4)
    0.0429
    """

    def __init__(self, margin=1.0, distance="L2", name="triplet_semihard_loss", **kwargs):
        super().__init__(margin=margin, distance=distance, name=name, **kwargs)

    def call(self, y_true, y_pred):
        return triplet_semihard_loss(y_true, y_pred, self.margin, self.distance)


@keras.saving.register_keras_serializable(package="keras_siamese")
class TripletBatchHardLoss(_TripletLoss):
    """Keras loss for `triplet_batch_hard_loss`: `y_true` labels, `y_pred` embeddings `[B, D]`.

    Example:
    >>> loss = TripletBatchHardLoss(soft_margin=True)
    >>> round(float(loss([0, 0, 1], [[0., 0.], [3., 4.], [0., 1.]])), 4)
    2.58
    """

    def __init__(
        self, margin=1.0, soft_margin=False, distance="L2", name="triplet_batch_hard_loss", **kwargs
    ):
        super().__init__(margin=margin, distance=distance, name=name, **kwargs)
        self.soft_margin = soft_margin

    def call(self, y_true, y_pred):
        return triplet_batch_hard_loss(
            y_true, y_pred, self.margin, self.soft_margin, self.distance
        )

    def get_config(self):
        return {**super().get_config(), "soft_margin": self.soft_margin}


@keras.saving.register_keras_serializable(package="keras_siamese")
class TripletBatchAllLoss(_TripletLoss):
    """Keras loss for `triplet_batch_all_loss`: `y_true` labels, `y_pred` embeddings `[B, D]`.

    Example:
    >>> loss = TripletBatchAllLoss()
    >>> round(float(loss([0, 0, 1], [[0., 0.], [3., 4.], [0., 1.]])), 4)
    3.3787
    """

    def __init__(self, margin=1.0, distance="L2", name="triplet_batch_all_loss", **kwargs):
        super().__init__(margin=margin, distance=distance, name=name, **kwargs)

    def call(self, y_true, y_pred):
        return triplet_batch_all_loss(y_true, y_pred, self.margin, self.distance)
