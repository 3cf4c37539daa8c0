"""Batches of pair, triplet and scored-pair rows in which no text appears twice: in-batch negatives that
are duplicates of a row's positive are false negatives."""

import collections
import itertools

import numpy as np
import tensorflow as tf

from keras_siamese.checks import check_integer
from keras_siamese.data.balanced import _share
from keras_siamese.data.epochs import epoch_dataset
from keras_siamese.data.rows import SCORED_PAIRS, TextRows, count_rows, iter_rows
from keras_siamese.data.sampling import epoch_rng, length_buckets


class DuplicateFreeSampler:
    """Row positions of batches in which no text appears twice, reproducible per (seed, epoch).

    Each epoch walks through shuffles of the rows; a row whose texts (any
    column) are already in the batch being filled waits for the next batch,
    so no batch repeats a text, and two rows of one anchor (or one positive)
    never meet: for multiple-negatives ranking every other row's positive is
    a true negative. Rows come from back-to-back shuffles: every row is used
    once before any is used twice, except that rows still waiting when a
    shuffle runs out (their texts clash with every batch so far) can be
    overtaken by rows of the next one.

    Length buckets (optional), as `ClassBalancedSampler`: with `lengths` (one
    per row, e.g. its longest text's token count) and increasing
    `bucket_boundaries`, every batch comes from one bucket; a bucket with
    fewer rows than a batch is merged with the next one. Batches are shared
    among buckets in proportion to their sizes and shuffled across buckets.

    Args:
        rows: a `TextRows`, or a list of tuples of texts.
        batch_size: rows per batch, >= 1 and at most the number of rows.
        seed: non-negative integer.
        batches_per_epoch: default: rows // batch_size, at least 1.
        lengths, bucket_boundaries: optional length buckets.
        distinct_texts: False lets texts repeat within a batch (plain shuffled batches).

    Example:
    >>> sampler = DuplicateFreeSampler([("a", "b"), ("a", "c"), ("d", "e"), ("f", "g")], batch_size=2)
    >>> [sorted(batch.tolist()) != [0, 1] for batch in sampler.epoch_indices(0)]
    [True, True]
    """

    def __init__(self, rows, batch_size, seed=0, batches_per_epoch=None, lengths=None, bucket_boundaries=None,
                 distinct_texts=True):
        rows = [tuple(row) for row in (zip(*rows.texts) if isinstance(rows, TextRows) else rows)]
        self.batch_size = check_integer(batch_size, "batch_size")
        self.seed = check_integer(seed, "seed", minimum=0)
        if self.batch_size > len(rows):
            raise ValueError(f"batch_size={self.batch_size} is more than the {len(rows)} rows.")
        text_ids = {}
        self._keys = [frozenset(text_ids.setdefault(text, len(text_ids)) for text in row) for row in rows]
        if not distinct_texts:
            self._keys = [frozenset()] * len(rows)
        self._groups = _length_groups(len(rows), lengths, bucket_boundaries, self.batch_size)
        if batches_per_epoch is None:
            batches_per_epoch = max(1, len(rows) // self.batch_size)
        self.batches_per_epoch = check_integer(batches_per_epoch, "batches_per_epoch")
        self._group_batches = _share(self.batches_per_epoch, np.array([len(group) for group in self._groups]))
        self.epoch_indices(0)  # a batch that cannot be filled is an error now, not inside tf.data

    def epoch_indices(self, epoch):
        """Row positions of epoch `epoch`'s batches: int64 `[batches_per_epoch, batch_size]`."""
        rng = epoch_rng(self.seed, epoch)
        batches = []
        for group, count in zip(self._groups, self._group_batches):
            shuffles = itertools.chain.from_iterable(rng.permutation(group) for _ in itertools.count())
            batches += itertools.islice(
                distinct_batches(shuffles, self.batch_size, self._keys.__getitem__, patience=len(group)), count
            )
        batches = np.array(batches, np.int64).reshape(self.batches_per_epoch, self.batch_size)
        return batches[rng.permutation(len(batches))] if len(self._groups) > 1 else batches


def distinct_batches(stream, batch_size, keys, patience):
    """Batches of `batch_size` items of `stream` in which no two items share a key (`keys(item)`, a set):
    an item that clashes with its batch waits for the next one. More than `patience` items waiting at
    once means the data cannot fill a batch: a `ValueError`.

    Example:
    >>> list(distinct_batches(iter("aabb"), 2, set, patience=4))
    [['a', 'b'], ['a', 'b']]
    """
    waiting = collections.deque()
    while True:
        batch, seen = [], set()
        for _ in range(len(waiting)):
            item = waiting.popleft()
            if len(batch) < batch_size and seen.isdisjoint(keys(item)):
                batch.append(item)
                seen.update(keys(item))
            else:
                waiting.append(item)
        while len(batch) < batch_size:
            item = next(stream, None)
            if item is None:
                return
            if seen.isdisjoint(keys(item)):
                batch.append(item)
                seen.update(keys(item))
            elif len(waiting) >= patience:
                raise ValueError(
                    f"Cannot fill a batch of {batch_size} rows without repeating a text: too many rows share "
                    "texts (e.g. one anchor with many positives). Lower the batch size or deduplicate the data."
                )
            else:
                waiting.append(item)
        yield batch


def row_batches(rows, batch_size=32, seed=0, batches_per_epoch=None, lengths=None, bucket_boundaries=None,
                distinct_texts=True, input_context=None):
    """A `tf.data.Dataset` of `((column_1, ..., column_n), targets)` batches of `TextRows`.

    Each column is `tf.string [batch_size]`, in the rows' column order: what
    `keras_siamese.models.pair_model(embedder, num_texts=n)` takes.
    `targets` is float32 `[batch_size]`: the scores of `SCORED_PAIRS` rows,
    zeros otherwise (`MultipleNegativesRankingLoss` ranks by position).
    Batches: `DuplicateFreeSampler` (no text twice in a batch, optional length
    buckets). Finite with known cardinality; each pass a new reproducible
    epoch; with an `input_context` every replica gets its slice of the same
    global batches; a `BackupAndRestore` in `fit` resumes them exactly.

    Example:
    >>> rows = TextRows(("anchor", "positive"), (["a", "b", "c"], ["x", "y", "z"]))
    >>> (anchor, positive), targets = next(iter(row_batches(rows, batch_size=2)))
    >>> anchor.shape.as_list(), targets.numpy().tolist()
    ([2], [0.0, 0.0])
    """
    if not isinstance(rows, TextRows):
        raise ValueError(f"rows must be TextRows (keras_siamese.data.load_rows), got {type(rows).__name__}.")
    sampler = DuplicateFreeSampler(rows, batch_size, seed, batches_per_epoch, lengths, bucket_boundaries,
                                   distinct_texts)
    columns = tf.constant(list(zip(*rows.texts)), tf.string)  # [rows, n]
    targets = tf.constant(rows.scores() if rows.shape == SCORED_PAIRS else np.zeros(len(rows), np.float32))

    def gather(batch):
        return tuple(tf.unstack(tf.gather(columns, batch), axis=1)), tf.gather(targets, batch)

    return epoch_dataset(
        lambda epoch: iter(sampler.epoch_indices(epoch)),
        sampler.batches_per_epoch,
        tf.TensorSpec([sampler.batch_size], tf.int64),
        gather=gather,
        input_context=input_context,
    )


def streamed_row_batches(source, batch_size=32, columns=None, label_column=None, seed=0, buffer_rows=100_000,
                         batches_per_epoch=None, distinct_texts=True):
    """`row_batches` of a file larger than memory: read `buffer_rows` rows at a time, never all of them.

    Each epoch reads `source` (see `keras_siamese.data.iter_rows`) in blocks of
    `buffer_rows` rows, shuffles each block with `(seed, epoch)` and fills
    duplicate-free batches from it (blocks keep the file's order, so a file
    sorted by topic is best shuffled once beforehand). A first pass counts
    the rows: `batches_per_epoch` defaults to rows // batch_size, which gives
    `fit` its progress bar; an epoch that needs more rows reads the file
    again. Memory: a block of rows.

    Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "pairs.jsonl"
    >>> _ = path.write_text('{"anchor": "a", "positive": "b"}\\n{"anchor": "c", "positive": "d"}\\n')
    >>> (anchor, positive), _ = next(iter(streamed_row_batches(path, batch_size=2)))
    >>> sorted(anchor.numpy().tolist())
    [b'a', b'c']
    """
    batch_size = check_integer(batch_size, "batch_size")
    buffer_rows = check_integer(buffer_rows, "buffer_rows", minimum=batch_size)
    seed = check_integer(seed, "seed", minimum=0)
    first = next(iter_rows(source, columns, label_column, chunk_rows=1))
    total = count_rows(source)
    if batch_size > total:
        raise ValueError(f"batch_size={batch_size} is more than the {total} rows of {first.source}.")
    if batches_per_epoch is None:
        batches_per_epoch = max(1, total // batch_size)
    batches_per_epoch = check_integer(batches_per_epoch, "batches_per_epoch")
    scored, width = first.shape == SCORED_PAIRS, len(first.columns)

    def rows_of_epoch(epoch):
        rng = epoch_rng(seed, epoch)
        for _ in itertools.count():  # an epoch longer than the file reads it again
            for chunk in iter_rows(source, columns, label_column, chunk_rows=buffer_rows):
                targets = chunk.scores() if scored else np.zeros(len(chunk), np.float32)
                for index in rng.permutation(len(chunk)):
                    yield chunk.row(index), targets[index]

    def batches_of_epoch(epoch):
        keys = (lambda item: set(item[0])) if distinct_texts else (lambda item: ())
        for batch in itertools.islice(distinct_batches(rows_of_epoch(epoch), batch_size, keys, buffer_rows),
                                      batches_per_epoch):
            yield tuple(np.array([row[c] for row, _ in batch], object) for c in range(width)), np.array(
                [target for _, target in batch], np.float32)

    return epoch_dataset(
        batches_of_epoch,
        batches_per_epoch,
        (tuple(tf.TensorSpec([batch_size], tf.string) for _ in range(width)), tf.TensorSpec([batch_size], tf.float32)),
    )


def _length_groups(num_rows, lengths, bucket_boundaries, batch_size):
    """Row positions per length bucket, buckets smaller than a batch merged upwards (the last downwards)."""
    if lengths is None and bucket_boundaries is None:
        return [np.arange(num_rows)]
    buckets = length_buckets(lengths, bucket_boundaries, num_rows, item="row")
    groups, pending = [], np.empty(0, np.int64)
    for bucket in np.unique(buckets):
        pending = np.concatenate([pending, np.flatnonzero(buckets == bucket)])
        if len(pending) >= batch_size:
            groups.append(pending)
            pending = np.empty(0, np.int64)
    if len(pending):
        groups[-1] = np.concatenate([groups[-1], pending])
    return groups
