"""Text pairs: labelled pairs for contrastive losses, anchor-positive pairs for ranking losses."""

import numbers

import numpy as np
import tensorflow as tf

from keras_siamese.checks import check_integer
from keras_siamese.data.balanced import ClassBalancedSampler
from keras_siamese.data.epochs import epoch_dataset
from keras_siamese.data.labels import check_corpus
from keras_siamese.data.sampling import group_by_class
from keras_siamese.data.triplets import TripletSampler


class PairSampler:
    """Text positions of labelled pairs, reproducible per (seed, epoch).

    Each batch holds exactly `round(positive_fraction * batch_size)` positive pairs (same
    label, two different texts) at random places; the rest are negative pairs (different
    labels). Pairs are cut from `TripletSampler` triplets: (anchor, positive) or
    (anchor, negative), so the first text of a pair always comes from a class with >= 2
    texts.

    Args:
        labels: one label per text, integers or strings (see `encode_labels`).
        batch_size: pairs per batch, >= 1.
        positive_fraction: share of positive pairs in each batch, in [0, 1].
        seed: non-negative integer.
        batches_per_epoch: defaults to (texts of classes with >= 2 texts) // batch_size.

    Example:
    >>> pairs, same = PairSampler([0, 0, 1, 1], batch_size=2).epoch_indices(0)
    >>> pairs.shape, same.sum(axis=1).tolist()
    ((2, 2, 2), [1.0, 1.0])
    """

    def __init__(self, labels, batch_size, positive_fraction=0.5, seed=0, batches_per_epoch=None):
        if (
            isinstance(positive_fraction, bool)
            or not isinstance(positive_fraction, numbers.Real)
            or not 0.0 <= positive_fraction <= 1.0
        ):
            raise ValueError(f"positive_fraction must be a number in [0, 1], got {positive_fraction!r}.")
        self.seed = check_integer(seed, "seed", minimum=0)
        self._triplets = TripletSampler(labels, batch_size, seed, batches_per_epoch)
        self.batch_size = self._triplets.batch_size
        self.batches_per_epoch = self._triplets.batches_per_epoch
        self.positives_per_batch = int(round(positive_fraction * self.batch_size))

    def epoch_indices(self, epoch):
        """`(pairs, same)`: int64 `[batches, batch_size, 2]` positions and float32
        `[batches, batch_size]` targets, 1.0 for a same-label pair, 0.0 otherwise."""
        triplets = self._triplets.epoch_indices(epoch)
        rng = np.random.default_rng([self.seed, epoch, 1])
        ranks = np.argsort(rng.random(triplets.shape[:2]), axis=1)
        same = ranks < self.positives_per_batch
        second = np.where(same, triplets[..., 1], triplets[..., 2])
        return np.stack([triplets[..., 0], second], axis=-1), same.astype(np.float32)


def pair_batches(texts, labels, batch_size=32, positive_fraction=0.5, seed=0, batches_per_epoch=None,
                 input_context=None):
    """A `tf.data.Dataset` of `((text_a, text_b), same)` batches for contrastive losses.

    `text_a`, `text_b`: `tf.string [batch_size]`; `same`: `tf.float32 [batch_size]`, 1.0
    when the two texts share a label (similar), 0.0 when they do not. Sampling rules:
    `PairSampler`. The dataset is finite with known cardinality; each pass is a new
    reproducible epoch. With an `input_context` each replica gets its slice of the
    same global batches (as `class_balanced_batches`).

    Example:
    >>> ds = pair_batches(["a", "b", "c", "d"], [0, 0, 1, 1], batch_size=4)
    >>> (text_a, text_b), same = next(iter(ds))
    >>> float(same.numpy().sum())
    2.0
    """
    texts, ids, _ = check_corpus(texts, labels)
    sampler = PairSampler(ids, batch_size, positive_fraction, seed, batches_per_epoch)
    all_texts = tf.constant(texts, tf.string)

    def gather(pairs, same):
        text_a, text_b = tf.unstack(tf.gather(all_texts, pairs), axis=1)
        return (text_a, text_b), same

    return epoch_dataset(
        lambda epoch: zip(*sampler.epoch_indices(epoch)),
        sampler.batches_per_epoch,
        (
            tf.TensorSpec([sampler.batch_size, 2], tf.int64),
            tf.TensorSpec([sampler.batch_size], tf.float32),
        ),
        gather=gather,
        input_context=input_context,
    )


def anchor_positive_batches(texts, labels, batch_size=32, seed=0, batches_per_epoch=None, input_context=None):
    """A `tf.data.Dataset` of `((anchor, positive), labels)` batches for in-batch-negative
    ranking losses (multiple negatives ranking).

    `anchor[i]` and `positive[i]` are two different texts with label `labels[i]`; the
    `batch_size` labels of a batch are all different, so for anchor i every other
    positive in the batch is a true negative. Texts are deduplicated first: a text that
    appears under several labels is left out (it would be a false negative), a text
    repeated under one label counts once; so no text appears twice in a batch. Pairs are
    drawn by `ClassBalancedSampler` with P = batch_size classes x K = 2 texts; labels as in
    `class_balanced_batches`.

    Args:
        texts, labels: the corpus.
        batch_size: pairs per batch: at least 2 and at most the number of labels with >= 2 distinct texts.
        seed: non-negative integer.
        batches_per_epoch: defaults to (usable texts) // (2 * batch_size).
        input_context: a `tf.distribute.InputContext`: each replica gets its slice of the
            same global batches (the loss ranks the whole global batch), as in
            `class_balanced_batches`.

    Example:
    >>> ds = anchor_positive_batches(["a", "b", "c", "d"], [0, 0, 1, 1], batch_size=2)
    >>> (anchor, positive), labels = next(iter(ds))
    >>> sorted(labels.numpy().tolist())
    [0, 1]
    """
    texts, ids, _ = check_corpus(texts, labels)
    seed = check_integer(seed, "seed", minimum=0)
    batch_size = check_integer(batch_size, "batch_size", minimum=2)
    kept = _unambiguous_distinct(texts, ids)
    _, members = group_by_class(ids[kept])
    usable = sum(len(m) >= 2 for m in members)
    if batch_size > usable:
        raise ValueError(
            f"anchor_positive_batches puts each label once in a batch: batch_size={batch_size} "
            f"exceeds the {usable} labels with >= 2 distinct texts."
        )
    sampler = ClassBalancedSampler(
        ids[kept], batch_size, 2, seed=seed, batches_per_epoch=batches_per_epoch
    )
    all_texts = tf.constant([texts[i] for i in kept], tf.string)
    all_labels = tf.constant(ids[kept], tf.int32)

    def gather(batch):
        pairs = tf.reshape(batch, [-1, 2])
        anchor, positive = tf.unstack(tf.gather(all_texts, pairs), axis=1)
        return (anchor, positive), tf.gather(all_labels, pairs[:, 0])

    return epoch_dataset(
        lambda epoch: iter(sampler.epoch_indices(epoch)),
        sampler.batches_per_epoch,
        tf.TensorSpec([sampler.batch_size], tf.int64),
        gather=gather,
        input_context=input_context,
    )


def _unambiguous_distinct(texts, ids):
    """Positions of the first occurrence of each text that carries a single label."""
    labels_of, first = {}, {}
    for position, (text, label) in enumerate(zip(texts, ids.tolist())):
        labels_of.setdefault(text, set()).add(label)
        first.setdefault(text, position)
    return np.array(
        sorted(position for text, position in first.items() if len(labels_of[text]) == 1),
        dtype=np.int64,
    )
