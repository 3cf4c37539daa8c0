"""Contrastive losses on labelled pairs of embeddings (similar = 1, dissimilar = 0).

Keras losses get the pair stacked: `y_pred = keras.ops.stack([emb_a, emb_b], axis=1)`
(shape `[B, 2, D]`), `y_true` the `[B]` 0/1 labels.
"""

import keras
import tensorflow as tf

from keras_siamese.losses._pairs import check_pair_labels, split_pairs
from keras_siamese.losses.distances import check_margin

PAIR_DISTANCES = ("euclidean", "cosine")


def _check_pair_distance(distance):
    if distance not in PAIR_DISTANCES:
        raise ValueError(f"Unknown pair distance {distance!r}: expected one of {PAIR_DISTANCES}.")


def pair_distance(first, second, distance="cosine"):
    """Row-wise distance between `[B, D]` embeddings: `"euclidean"` or `"cosine"` (1 - cosine)."""
    _check_pair_distance(distance)
    if distance == "cosine":
        cosine = tf.reduce_sum(
            tf.math.l2_normalize(first, axis=1) * tf.math.l2_normalize(second, axis=1), axis=1
        )
        return 1.0 - cosine
    squared = tf.reduce_sum(tf.square(first - second), axis=1)
    # sqrt'(0) is infinite: identical pairs get distance 0 with a zero gradient.
    return tf.where(squared > 0.0, tf.sqrt(tf.where(squared > 0.0, squared, 1.0)), 0.0)


def _prepare(labels, pairs, distance, margin):
    _check_pair_distance(distance)
    check_margin(margin)
    dtype = tf.convert_to_tensor(pairs).dtype
    first, second = split_pairs(pairs)
    labels = check_pair_labels(labels, first.shape[0], binary=True)
    return labels, pair_distance(first, second, distance), dtype


def contrastive_loss(labels, pairs, margin=0.5, distance="cosine"):
    """Contrastive loss (Hadsell et al., 2006): pull similar pairs together, push
    dissimilar pairs beyond `margin`.

    Per pair `0.5 * (y * d^2 + (1 - y) * max(margin - d, 0)^2)`, averaged over the
    batch (sentence-transformers' `ContrastiveLoss` with `size_average=True`).

    Args:
        labels: `[B]` 1 for similar pairs, 0 for dissimilar ones.
        pairs: `[B, 2, D]` the two embeddings of each pair, stacked on axis 1.
        margin: dissimilar pairs closer than this are penalised.
        distance: `"cosine"` (1 - cosine similarity) or `"euclidean"`.

    Needs both kinds of pairs in the data. Related: `online_contrastive_loss` (only
    the hard pairs), `cosine_similarity_loss` (graded similarity labels).

    Example:
    >>> pairs = [[[1., 0.], [1., 0.]], [[1., 0.], [0., 1.]]]
    >>> float(contrastive_loss([1, 0], pairs, margin=0.5))
    0.0
    """
    labels, d, dtype = _prepare(labels, pairs, distance, margin)
    per_pair = 0.5 * (labels * tf.square(d) + (1.0 - labels) * tf.square(tf.nn.relu(margin - d)))
    count = tf.maximum(tf.cast(tf.size(per_pair), tf.float32), 1.0)  # empty batch: 0
    return tf.cast(tf.reduce_sum(per_pair) / count, dtype)


def online_contrastive_loss(labels, pairs, margin=0.5, distance="cosine"):
    """Contrastive loss on the hard pairs of the batch only.

    Hard positives are similar pairs farther apart than the closest dissimilar pair;
    hard negatives are dissimilar pairs closer than the farthest similar pair. The loss
    is the sum of `d^2` over hard positives and `max(margin - d, 0)^2` over hard
    negatives (a sum, as sentence-transformers' `OnlineContrastiveLoss`). Without any
    dissimilar pair every similar pair counts as hard, and the other way round.

    Args: as `contrastive_loss`. Batches need both similar and dissimilar pairs to mine.
    Usually beats `contrastive_loss` (e.g. for duplicate-question detection).

    Example:
    >>> pairs = [[[1., 0.], [0., 1.]], [[1., 0.], [1., 1.]]]
    >>> round(float(online_contrastive_loss([1, 0], pairs, margin=0.5)), 4)
    1.0429
    """
    labels, d, dtype = _prepare(labels, pairs, distance, margin)
    similar = labels > 0.5
    infinity = tf.constant(float("inf"))
    # With no pair of the other kind, the threshold lets every pair through.
    closest_dissimilar = tf.reduce_min(tf.where(similar, infinity, d))
    closest_dissimilar = tf.where(tf.reduce_all(similar), -infinity, closest_dissimilar)
    farthest_similar = tf.reduce_max(tf.where(similar, d, -infinity))
    farthest_similar = tf.where(tf.reduce_any(similar), farthest_similar, infinity)
    hard_positive = similar & (d > closest_dissimilar)
    hard_negative = ~similar & (d < farthest_similar)
    loss = tf.reduce_sum(tf.where(hard_positive, tf.square(d), 0.0)) + tf.reduce_sum(
        tf.where(hard_negative, tf.square(tf.nn.relu(margin - d)), 0.0)
    )
    return tf.cast(loss, dtype)


class _PairLoss(keras.losses.Loss):
    def __init__(self, margin, distance, name, **kwargs):
        _check_pair_distance(distance)
        check_margin(margin)
        super().__init__(name=name, **kwargs)
        self.margin = margin
        self.distance = distance

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "distance": self.distance}


@keras.saving.register_keras_serializable(package="keras_siamese")
class ContrastiveLoss(_PairLoss):
    """Keras loss for `contrastive_loss`: `y_true` 0/1 `[B]`, `y_pred` stacked pairs `[B, 2, D]`.

    Example:
    >>> loss = ContrastiveLoss(margin=0.5)
    >>> float(loss([1.0], [[[1., 0.], [0., 1.]]]))
    0.5
    """

    def __init__(self, margin=0.5, distance="cosine", name="contrastive_loss", **kwargs):
        super().__init__(margin, distance, name, **kwargs)

    def call(self, y_true, y_pred):
        return contrastive_loss(y_true, y_pred, self.margin, self.distance)


@keras.saving.register_keras_serializable(package="keras_siamese")
class OnlineContrastiveLoss(_PairLoss):
    """Keras loss for `online_contrastive_loss`: `y_true` 0/1 `[B]`, `y_pred` stacked pairs `[B, 2, D]`.

    Example:
    >>> loss = OnlineContrastiveLoss()
    >>> float(loss([1.0, 0.0], [[[1., 0.], [0., 1.]], [[1., 0.], [1., 0.]]]))
    1.25
    """

    def __init__(self, margin=0.5, distance="cosine", name="online_contrastive_loss", **kwargs):
        super().__init__(margin, distance, name, **kwargs)

    def call(self, y_true, y_pred):
        return online_contrastive_loss(y_true, y_pred, self.margin, self.distance)
