"""Input handling shared by the losses on (anchor, other) embedding pairs."""

import tensorflow as tf

from keras_siamese.losses.distances import check_embeddings


def split_pairs(pairs, what="y_pred"):
    """Splits stacked pairs `[B, 2, D]` into `(first [B, D], second [B, D])` float32.

    Keras losses receive one `y_pred`, so pair losses take the two embeddings stacked
    on axis 1: `keras.ops.stack([embedding_a, embedding_b], axis=1)`.
    """
    pairs = check_embeddings(pairs, rank=3, what=what)
    if pairs.shape[1] is not None and pairs.shape[1] < 2:
        raise ValueError(f"{what} must stack at least 2 embeddings on axis 1, got shape {pairs.shape}.")
    pairs = tf.cast(pairs, tf.float32)
    return pairs[:, 0], pairs[:, 1]


def check_pair_labels(labels, batch_size, what="labels", binary=False):
    """Returns float32 labels `[B]` from a `[B]` or `[B, 1]` tensor; ValueError on a bad shape,
    and with `binary` on values other than 0 and 1 (checked when the graph runs, in a `tf.function`)."""
    labels = tf.convert_to_tensor(labels)
    rank = labels.shape.rank
    if rank is not None and not (rank == 1 or (rank == 2 and labels.shape[1] in (1, None))):
        raise ValueError(f"{what} must have shape [B] or [B, 1], got {labels.shape}.")
    labels = tf.cast(tf.reshape(labels, [-1]), tf.float32)
    count = labels.shape[0]
    if count is not None and isinstance(batch_size, int) and count != batch_size:
        raise ValueError(f"{what} must have one entry per pair: got {count} for {batch_size} pairs.")
    if not binary:
        return labels
    message = f"{what} of contrastive losses must be 1 (similar pair) or 0 (dissimilar pair)"
    is_binary = tf.reduce_all((labels == 0.0) | (labels == 1.0))
    if tf.executing_eagerly():
        if not bool(is_binary):
            raise ValueError(f"{message}, got {sorted(set(labels.numpy().tolist()) - {0.0, 1.0})}.")
        return labels
    with tf.control_dependencies([tf.debugging.Assert(is_binary, [message])]):
        return tf.identity(labels)
