"""Explicit (anchor, positive, negative) triplets, for losses that take triplets as input."""

import numpy as np
import tensorflow as tf

from keras_siamese.checks import check_integer
from keras_siamese.data.epochs import epoch_dataset
from keras_siamese.data.labels import check_corpus, encode_labels
from keras_siamese.data.sampling import (
    cycled_permutation,
    epoch_rng,
    group_by_class,
)


class TripletSampler:
    """Text positions of random triplets, reproducible per (seed, epoch).

    - Anchor: every text of a class with >= 2 texts, once per epoch in shuffled order
      (after that, a fresh shuffle).
    - Positive: another text of the anchor's class, uniformly at random.
    - Negative: uniformly at random among all texts of other classes (single-text
      classes included).

    Args:
        labels: one label per text, integers or strings (see `encode_labels`).
        batch_size: triplets per batch, >= 1.
        seed: non-negative integer; epoch `e` uses `numpy.random.default_rng([seed, e])`.
        batches_per_epoch: defaults to (number of possible anchors) // batch_size.

    Example:
    >>> TripletSampler([0, 0, 1, 1], batch_size=2).epoch_indices(0).shape
    (2, 2, 3)
    """

    def __init__(self, labels, batch_size, seed=0, batches_per_epoch=None):
        ids, _ = encode_labels(labels)
        self.batch_size = check_integer(batch_size, "batch_size")
        self.seed = check_integer(seed, "seed", minimum=0)
        classes, members = group_by_class(ids)
        if len(classes) < 2:
            raise ValueError("triplets need at least 2 classes, found 1.")
        self._order = np.concatenate(members)
        self._sizes = np.array([len(m) for m in members])
        self._starts = np.cumsum(self._sizes) - self._sizes
        self._class_of = np.empty(len(ids), np.int64)
        self._rank_in_class = np.empty(len(ids), np.int64)
        for number, positions in enumerate(members):
            self._class_of[positions] = number
            self._rank_in_class[positions] = np.arange(len(positions))
        self._anchors = np.concatenate([m for m in members if len(m) >= 2] or [np.empty(0, np.int64)])
        if self._anchors.size == 0:
            raise ValueError("triplets need a class with at least 2 texts, found none.")
        if batches_per_epoch is None:
            batches_per_epoch = max(1, len(self._anchors) // self.batch_size)
        self.batches_per_epoch = check_integer(batches_per_epoch, "batches_per_epoch")

    def epoch_indices(self, epoch):
        """Epoch `epoch`'s triplets: int64 `[batches_per_epoch, batch_size, 3]` positions."""
        rng = epoch_rng(self.seed, epoch)
        anchors = cycled_permutation(rng, self._anchors, self.batches_per_epoch * self.batch_size)
        cls = self._class_of[anchors]
        sizes, starts = self._sizes[cls], self._starts[cls]
        # Positive: a uniform rank among the class's other texts, skipping the anchor's.
        rank = rng.integers(0, sizes - 1)
        rank += rank >= self._rank_in_class[anchors]
        positives = self._order[starts + rank]
        # Negative: a uniform slot among all texts outside the class block, skipping it.
        slot = rng.integers(0, len(self._order) - sizes)
        slot += np.where(slot >= starts, sizes, 0)
        negatives = self._order[slot]
        triplets = np.stack([anchors, positives, negatives], axis=-1)
        return triplets.reshape(self.batches_per_epoch, self.batch_size, 3)


def triplet_batches(texts, labels, batch_size=32, seed=0, batches_per_epoch=None, input_context=None):
    """A `tf.data.Dataset` of `((anchor, positive, negative), labels)` batches.

    anchor, positive and negative are `tf.string [batch_size]`: positive shares the
    anchor's label, negative has another one. `labels` (`tf.int32 [batch_size]`) is the
    anchor's label (integer labels as given; string labels as their index in the sorted
    names). Sampling rules: `TripletSampler`. Like `class_balanced_batches`, the dataset is
    finite with known cardinality, each pass over it is a new reproducible epoch, and with
    an `input_context` each replica gets its slice of the same global batches.

    Example:
    >>> ds = triplet_batches(["a", "b", "c", "d"], [0, 0, 1, 1], batch_size=2)
    >>> (anchor, positive, negative), labels = next(iter(ds))
    >>> anchor.shape.as_list(), labels.dtype.name
    ([2], 'int32')
    """
    texts, ids, _ = check_corpus(texts, labels)
    sampler = TripletSampler(ids, batch_size, seed=seed, batches_per_epoch=batches_per_epoch)
    all_texts = tf.constant(texts, tf.string)
    all_labels = tf.constant(ids, tf.int32)

    def gather(triplets):
        anchor, positive, negative = tf.unstack(tf.gather(all_texts, triplets), axis=1)
        return (anchor, positive, negative), tf.gather(all_labels, triplets[:, 0])

    return epoch_dataset(
        lambda epoch: iter(sampler.epoch_indices(epoch)),
        sampler.batches_per_epoch,
        tf.TensorSpec([sampler.batch_size, 3], tf.int64),
        gather=gather,
        input_context=input_context,
    )
