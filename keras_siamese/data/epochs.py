"""A finite tf.data pipeline whose every pass over the data is a new, reproducible epoch."""

import itertools

import tensorflow as tf


def epoch_dataset(batches_for_epoch, batches_per_epoch, output_signature):
    """Builds a dataset that yields `batches_for_epoch(e)` on its e-th pass (e = 0, 1, ...).

    Keras iterates a finite dataset afresh at each epoch of `model.fit`, so the first
    epoch gets `batches_for_epoch(0)`, the second `batches_for_epoch(1)`, and so on:
    epochs differ, and a new dataset built with the same arguments replays the same
    sequence. The cardinality is set to `batches_per_epoch`, which gives Keras progress
    bars their length; `.repeat()` works too and keeps counting epochs.

    Args:
        batches_for_epoch: function of the epoch number returning an iterable of
            `batches_per_epoch` batches, each matching `output_signature`.
        batches_per_epoch: number of batches that function returns.
        output_signature: nested `tf.TensorSpec` of one batch.

    Example:
    >>> import numpy as np
    >>> ds = epoch_dataset(lambda e: [np.array([e, e])], 1, tf.TensorSpec([2], tf.int64))
    >>> [b.numpy().tolist() for b in ds], [b.numpy().tolist() for b in ds]
    ([[0, 0]], [[1, 1]])
    """
    epochs = itertools.count()

    def next_epoch():
        yield from batches_for_epoch(next(epochs))

    dataset = tf.data.Dataset.from_generator(next_epoch, output_signature=output_signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(batches_per_epoch))
