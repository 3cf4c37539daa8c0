"""Cosine-similarity regression on pairs with graded similarity labels."""

import keras
import tensorflow as tf

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
    cosine = tf.reduce_sum(
        tf.math.l2_normalize(first, axis=1) * tf.math.l2_normalize(second, axis=1), axis=1
    )
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
