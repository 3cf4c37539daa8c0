"""Multiple-negatives ranking loss: in-batch softmax over (anchor, positive) pairs."""

import keras
import tensorflow as tf

from keras_siamese.losses._pairs import split_pairs


def multiple_negatives_ranking_loss(pairs, scale=20.0, symmetric=False):
    """In-batch softmax cross-entropy: each anchor must pick its own positive.

    For anchor i, the scores are `scale * cos(anchor_i, candidate_j)` over every
    candidate of the batch (all positives, then any hard negatives); the target is
    candidate i. With `symmetric=True`, the mean with the positive-to-anchor direction
    (each positive must pick its anchor among the anchors) is returned, as
    sentence-transformers' `MultipleNegativesSymmetricRankingLoss`.

    Args:
        pairs: `[B, 2 + H, D]`: anchor, positive and H optional hard negatives per row.
            Needs only positive pairs (no labels): the other rows serve as negatives,
            so larger batches help, and the batch must not hold two rows whose positives
            would fit each other's anchors (e.g. duplicates).
        scale: inverse temperature of the softmax (sentence-transformers' default 20).
        symmetric: add the positive-to-anchor direction.

    Related: `contrastive_loss` (labelled pairs), `cosine_similarity_loss` (graded labels).

    Example:
    >>> pairs = [[[1., 0.], [1., 0.1]], [[0., 1.], [0.1, 1.]]]
    >>> round(float(multiple_negatives_ranking_loss(pairs)), 4)
    0.0
    """
    dtype = tf.convert_to_tensor(pairs).dtype
    split_pairs(pairs)  # validates shape and values
    pairs = tf.math.l2_normalize(tf.cast(pairs, tf.float32), axis=2)
    anchors = pairs[:, 0]
    batch = tf.shape(anchors)[0]
    candidates = tf.reshape(tf.transpose(pairs[:, 1:], [1, 0, 2]), [-1, tf.shape(pairs)[2]])
    scores = scale * tf.matmul(anchors, candidates, transpose_b=True)  # [B, (1 + H) B]
    targets = tf.range(batch)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, scores)
    loss = tf.reduce_sum(loss) / tf.maximum(tf.cast(batch, tf.float32), 1.0)
    if symmetric:
        backward = tf.nn.sparse_softmax_cross_entropy_with_logits(
            targets, tf.transpose(scores[:, :batch])
        )
        backward = tf.reduce_sum(backward) / tf.maximum(tf.cast(batch, tf.float32), 1.0)
        loss = (loss + backward) / 2.0
    return tf.cast(loss, dtype)


@keras.saving.register_keras_serializable(package="keras_siamese")
class MultipleNegativesRankingLoss(keras.losses.Loss):
    """Keras loss for `multiple_negatives_ranking_loss`. `y_pred` is `[B, 2 + H, D]`
    (anchor, positive, hard negatives stacked on axis 1); `y_true` is ignored (pass
    zeros: the targets are the batch positions).

    Example:
    >>> loss = MultipleNegativesRankingLoss(scale=20.0, symmetric=True)
    >>> round(float(loss([0., 0.], [[[1., 0.], [1., 0.]], [[0., 1.], [0., 1.]]])), 4)
    0.0
    """

    def __init__(self, scale=20.0, symmetric=False, name="multiple_negatives_ranking_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.scale = scale
        self.symmetric = symmetric

    def call(self, y_true, y_pred):
        return multiple_negatives_ranking_loss(y_pred, self.scale, self.symmetric)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "symmetric": self.symmetric}
