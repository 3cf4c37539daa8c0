"""Losses on pairs with graded similarity labels: cosine-similarity regression and CoSENT ranking."""

import keras
import tensorflow as tf

from keras_siamese.checks import is_number
from keras_siamese.losses._pairs import check_pair_labels, split_pairs


def cosine_similarity_loss(labels, pairs):
    """Mean squared error between `cos(a, b)` and a float similarity label.

    Args:
        labels: `[B]` target similarities, typically in [0, 1] or [-1, 1]
            (e.g. STS scores divided by 5).
        pairs: `[B, 2, D]` the two embeddings of each pair, stacked on axis 1.

    Any batch composition works. As sentence-transformers' `CosineSimilarityLoss`;
    related: `contrastive_loss` (binary labels), `multiple_negatives_ranking_loss`
    (positive pairs only).

    Example:
    >>> float(cosine_similarity_loss([1.0, 0.0], [[[1., 0.], [2., 0.]], [[1., 0.], [0., 3.]]]))
    0.0
    """
    dtype = tf.convert_to_tensor(pairs).dtype
    first, second = split_pairs(pairs)
    labels = check_pair_labels(labels, first.shape[0])
    cosine = _pair_cosines(first, second)
    count = tf.maximum(tf.cast(tf.size(cosine), tf.float32), 1.0)  # empty batch: 0
    return tf.cast(tf.reduce_sum(tf.square(cosine - labels)) / count, dtype)


@keras.saving.register_keras_serializable(package="keras_siamese")
class CosineSimilarityLoss(keras.losses.Loss):
    """Keras loss for `cosine_similarity_loss`: `y_true` float `[B]`, `y_pred` stacked pairs `[B, 2, D]`.

    Example:
    >>> loss = CosineSimilarityLoss()
    >>> float(loss([0.0], [[[1., 0.], [1., 0.]]]))
    1.0
    """

    def __init__(self, name="cosine_similarity_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return cosine_similarity_loss(y_true, y_pred)


def cosent_loss(labels, pairs, scale=20.0):
    """CoSENT (Su, 2022): a ranking loss that orders the pairs' cosines as their labels.

    `log(1 + sum over pairs i, j with labels[i] > labels[j] of exp(scale * (cos_j - cos_i)))`:
    every pair scored more similar than another should have the larger cosine.
    Only the order of the labels matters, so STS scores work as they are (0-5);
    it trains the Spearman correlation that STS benchmarks report, where
    `cosine_similarity_loss` regresses the cosine onto the label. As
    sentence-transformers' `CoSENTLoss` (`scale=20`).

    Args:
        labels: `[B]` similarity scores, any real scale.
        pairs: `[B, 2, D]` the two embeddings of each pair, stacked on axis 1.
        scale: inverse temperature, > 0.

    Example:
    >>> pairs = [[[1., 0.], [1., 0.]], [[1., 0.], [0., 1.]]]  # cosines 1 and 0
    >>> round(float(cosent_loss([5.0, 1.0], pairs)), 4), round(float(cosent_loss([1.0, 5.0], pairs)), 4)
    (0.0, 20.0)
    """
    check_scale(scale)
    dtype = tf.convert_to_tensor(pairs).dtype
    first, second = split_pairs(pairs)
    labels = tf.debugging.assert_all_finite(
        check_pair_labels(labels, first.shape[0]), "CoSENT labels must be finite similarity scores"
    )
    scores = scale * _pair_cosines(first, second)
    # differences[i, j] = scores[j] - scores[i], counted where labels[i] > labels[j].
    differences = scores[None, :] - scores[:, None]
    ordered = labels[:, None] > labels[None, :]
    masked = tf.where(ordered, differences, tf.fill(tf.shape(differences), -float("inf")))
    terms = tf.concat([tf.zeros([1]), tf.reshape(masked, [-1])], axis=0)
    return tf.cast(tf.reduce_logsumexp(terms), dtype)


@keras.saving.register_keras_serializable(package="keras_siamese")
class CoSENTLoss(keras.losses.Loss):
    """Keras loss for `cosent_loss`: `y_true` float scores `[B]`, `y_pred` stacked pairs `[B, 2, D]`.

    Train `pair_model(embedder)` on `((text_a, text_b), score)` batches; measure it with
    `keras_siamese.evaluation.pair_similarity_correlation`.

    Example:
    >>> loss = CoSENTLoss(scale=1.0)
    >>> round(float(loss([1.0, 0.0], [[[1., 0.], [0., 1.]], [[1., 0.], [1., 0.]]])), 4)
    1.3133
    """

    def __init__(self, scale=20.0, name="cosent_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.scale = check_scale(scale)

    def call(self, y_true, y_pred):
        return cosent_loss(y_true, y_pred, self.scale)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def check_scale(scale):
    """`scale` as a float if it is a positive finite number; else a `ValueError` naming it."""
    if not is_number(scale) or not 0 < scale < float("inf"):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}.")
    return float(scale)


def _pair_cosines(first, second):
    return tf.reduce_sum(tf.math.l2_normalize(first, axis=1) * tf.math.l2_normalize(second, axis=1), axis=1)
