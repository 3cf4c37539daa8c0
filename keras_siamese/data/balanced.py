"""Class-balanced P x K batches for online triplet mining: every batch holds positives."""

import numpy as np
import tensorflow as tf

from keras_siamese.checks import check_integer
from keras_siamese.data.epochs import epoch_dataset
from keras_siamese.data.labels import check_corpus, encode_labels
from keras_siamese.data.sampling import (
    cycled_permutation,
    epoch_rng,
    group_by_class,
    length_buckets,
)

# Rows of Gumbel keys drawn at once: bounds memory when there are many classes.
_KEYS_PER_CHUNK = 1 << 22


class ClassBalancedSampler:
    """Index batches of P distinct classes x K examples each, reproducible per (seed, epoch).

    How a batch is drawn:
    - P distinct classes, drawn without replacement with probability proportional to
      their size (Gumbel top-P), so a frequent class shows up in many batches, at most
      once per batch.
    - K examples of each chosen class, with no repeat inside the batch. Across the
      batches of an epoch a class walks through shuffles of its examples: each example
      is used once before any is used twice.
    - A class with fewer than K examples (but at least 2) gives all of them, repeated in
      shuffled order up to K. A class with a single example cannot give a positive pair
      and is left out (its text is never drawn).
    - Rows are grouped by class: positions `[i*K, (i+1)*K)` share a label.

    Epoch `e` draws from `numpy.random.default_rng([seed, e])`: same seed and epoch, same
    batches; other epochs, other batches.

    Length buckets (optional): give `lengths` (one per text, e.g. token counts) and
    increasing `bucket_boundaries`; bucket `i` holds lengths in
    `[bucket_boundaries[i-1], bucket_boundaries[i])`, as in
    `tf.data.Dataset.bucket_by_sequence_length`. Every batch then comes from one bucket
    and is still P x K. Going up in length, a bucket with fewer than P classes of >= 2
    examples or fewer than P*K such examples is merged with the next one (the last such
    bucket with the one before). Batches are shared among buckets in proportion to their
    sizes and shuffled across buckets.

    Args:
        labels: one label per text: integers or strings (see `encode_labels`).
        classes_per_batch: P, at least 2 and at most the number of classes with >= 2
            examples (a larger value raises a ValueError, it is not clamped).
        samples_per_class: K, at least 2.
        seed: non-negative integer.
        batches_per_epoch: defaults to (number of usable texts) // (P*K), at least 1.
        lengths: optional per-text lengths for length buckets.
        bucket_boundaries: optional increasing integers, required with `lengths`.

    Example:
    >>> sampler = ClassBalancedSampler([0, 0, 1, 1, 2, 2], 2, 2, seed=0)
    >>> sampler.epoch_indices(0).shape
    (1, 4)
    """

    def __init__(
        self,
        labels,
        classes_per_batch,
        samples_per_class,
        seed=0,
        batches_per_epoch=None,
        lengths=None,
        bucket_boundaries=None,
    ):
        ids, _ = encode_labels(labels)
        self.classes_per_batch = check_integer(classes_per_batch, "classes_per_batch", minimum=2)
        self.samples_per_class = check_integer(samples_per_class, "samples_per_class", minimum=2)
        self.seed = check_integer(seed, "seed", minimum=0)
        groups = [_usable_classes(ids, np.arange(len(ids)))]
        qualifying = len(groups[0])
        if qualifying < 2:
            raise ValueError(
                f"need at least 2 classes with >= 2 examples each, found {qualifying}."
            )
        if self.classes_per_batch > qualifying:
            raise ValueError(
                f"classes_per_batch={self.classes_per_batch} exceeds the {qualifying} classes "
                "with >= 2 examples; lower classes_per_batch."
            )
        if lengths is not None or bucket_boundaries is not None:
            groups = self._length_groups(ids, lengths, bucket_boundaries)
        self._groups = groups
        usable = np.array([sum(len(members) for members in group) for group in groups])
        batch_size = self.classes_per_batch * self.samples_per_class
        if batches_per_epoch is None:
            batches_per_epoch = max(1, int(usable.sum()) // batch_size)
        self.batches_per_epoch = check_integer(batches_per_epoch, "batches_per_epoch")
        self._group_batches = _share(self.batches_per_epoch, usable)

    @property
    def batch_size(self):
        """P * K, the number of texts in a batch."""
        return self.classes_per_batch * self.samples_per_class

    def epoch_indices(self, epoch):
        """Text positions of epoch `epoch`'s batches: int64 `[batches_per_epoch, P*K]`."""
        rng = epoch_rng(self.seed, epoch)
        batches = [
            self._draw(rng, group, count)
            for group, count in zip(self._groups, self._group_batches)
            if count
        ]
        batches = np.concatenate(batches)
        return batches[rng.permutation(len(batches))] if len(self._groups) > 1 else batches

    def _draw(self, rng, members, num_batches):
        """Draws `num_batches` P x K batches from the classes whose positions are `members`."""
        P, K = self.classes_per_batch, self.samples_per_class
        sizes = np.array([len(positions) for positions in members])
        chosen = _choose_classes(rng, sizes, num_batches, P).ravel()
        rows = np.empty((chosen.size, K), np.int64)
        order = np.argsort(chosen, kind="stable")
        counts = np.bincount(chosen, minlength=len(members))
        start = 0
        for cls in np.flatnonzero(counts):
            selections = order[start:start + counts[cls]]
            rows[selections] = _class_draws(rng, members[cls], len(selections), K)
            start += len(selections)
        return rows.reshape(num_batches, P * K)

    def _length_groups(self, ids, lengths, bucket_boundaries):
        """Splits the corpus into length buckets, merging buckets too small for a P x K batch."""
        buckets = length_buckets(lengths, bucket_boundaries, len(ids))
        groups, pending = [], np.empty(0, np.int64)
        for bucket in np.unique(buckets):
            pending = np.concatenate([pending, np.flatnonzero(buckets == bucket)])
            if self._fills_a_batch(_usable_classes(ids, pending)):
                groups.append(pending)
                pending = np.empty(0, np.int64)
        if pending.size:
            if groups:
                groups[-1] = np.concatenate([groups[-1], pending])
            else:
                groups.append(pending)
        return [_usable_classes(ids, positions) for positions in groups]

    def _fills_a_batch(self, members):
        """True when `members` has P usable classes and at least P*K usable texts."""
        return (
            len(members) >= self.classes_per_batch
            and sum(len(positions) for positions in members) >= self.batch_size
        )


def _usable_classes(ids, positions):
    """Positions of each class among `positions` that has >= 2 of them."""
    _, members = group_by_class(ids[positions])
    return [positions[m] for m in members if len(m) >= 2]


def _choose_classes(rng, sizes, num_batches, num_classes):
    """`[num_batches, num_classes]` distinct class numbers per row, drawn without
    replacement with probability proportional to `sizes` (Gumbel top-k), sorted per row."""
    log_sizes = np.log(sizes)
    rows_per_chunk = max(1, _KEYS_PER_CHUNK // len(sizes))
    chunks = []
    for start in range(0, num_batches, rows_per_chunk):
        rows = min(rows_per_chunk, num_batches - start)
        keys = log_sizes + rng.gumbel(size=(rows, len(sizes)))
        top = np.argpartition(-keys, num_classes - 1, axis=1)[:, :num_classes]
        chunks.append(np.sort(top, axis=1))
    return np.concatenate(chunks)


def _class_draws(rng, positions, count, samples_per_class):
    """`count` rows of `samples_per_class` positions of one class, no repeat inside a row
    unless the class has fewer positions than a row holds."""
    if len(positions) >= samples_per_class:
        draws = cycled_permutation(rng, positions, count * samples_per_class, samples_per_class)
        return draws.reshape(count, samples_per_class)
    shuffled = rng.permuted(np.tile(positions, (count, 1)), axis=1)
    return shuffled[:, np.arange(samples_per_class) % len(positions)]


def _share(total, sizes):
    """Splits `total` into integer parts proportional to `sizes` (largest remainder)."""
    exact = total * sizes / sizes.sum()
    parts = np.floor(exact).astype(np.int64)
    parts[np.argsort(parts - exact, kind="stable")[: total - parts.sum()]] += 1
    return parts


def class_balanced_batches(
    texts,
    labels,
    classes_per_batch=16,
    samples_per_class=4,
    seed=0,
    batches_per_epoch=None,
    lengths=None,
    bucket_boundaries=None,
    input_context=None,
):
    """A `tf.data.Dataset` of `(texts, labels)` batches of P classes x K examples.

    Each element is `(tf.string [P*K], tf.int32 [P*K])`; labels are the given integer
    labels, or for string labels their index in the sorted distinct names
    (`encode_labels`). The dataset is finite with a known cardinality
    (`batches_per_epoch`), and each pass over it is a new epoch drawn by
    `ClassBalancedSampler.epoch_indices(e)` for e = 0, 1, ...: `model.fit(ds, epochs=E)`
    sees E different, reproducible epochs. See `ClassBalancedSampler` for the sampling
    rules (class weights, rare classes, optional length buckets).

    With a `tf.distribute.InputContext` (from `strategy.distribute_datasets_from_function`
    or `SentenceEmbedder.distributed_batches`) every input pipeline draws the same global
    P x K batches and yields its replicas' contiguous slices of each,
    `P * K / num_replicas_in_sync` rows a replica: together the workers train on the
    global batch, which their losses mine whole.

    Example:
    >>> ds = class_balanced_batches(["a", "b", "c", "d"], [0, 0, 1, 1], 2, 2)
    >>> texts, labels = next(iter(ds))
    >>> sorted(labels.numpy().tolist())
    [0, 0, 1, 1]
    """
    texts, ids, _ = check_corpus(texts, labels)
    sampler = ClassBalancedSampler(
        ids,
        classes_per_batch,
        samples_per_class,
        seed=seed,
        batches_per_epoch=batches_per_epoch,
        lengths=lengths,
        bucket_boundaries=bucket_boundaries,
    )
    all_texts = tf.constant(texts, tf.string)
    all_labels = tf.constant(ids, tf.int32)

    def gather(batch):
        return tf.gather(all_texts, batch), tf.gather(all_labels, batch)

    return epoch_dataset(
        lambda epoch: iter(sampler.epoch_indices(epoch)),
        sampler.batches_per_epoch,
        tf.TensorSpec([sampler.batch_size], tf.int64),
        gather=gather,
        input_context=input_context,
    )
