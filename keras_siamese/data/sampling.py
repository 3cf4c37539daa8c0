"""Random index helpers shared by the batch generators: per-epoch generators, cycled draws."""

import numpy as np

from keras_siamese.checks import check_integer


def epoch_rng(seed, epoch):
    """The random generator of one epoch: same `(seed, epoch)`, same draws.

    Example:
    >>> int(epoch_rng(0, 1).integers(100)) == int(epoch_rng(0, 1).integers(100))
    True
    """
    return np.random.default_rng([seed, check_integer(epoch, "epoch", minimum=0)])


def cycled_permutation(rng, pool, count, block=1):
    """Draws `count` items of `pool` as back-to-back shuffles, each cut to a multiple of `block`.

    Every item appears once before any appears twice, and a run of `block` consecutive
    items starting at a multiple of `block` never repeats an item (needs
    `len(pool) >= block`).

    Example:
    >>> out = cycled_permutation(np.random.default_rng(0), np.arange(5), 8, block=2)
    >>> sorted(out[:4].tolist()) == sorted(set(out[:4].tolist())), len(out)
    (True, 8)
    """
    pool = np.asarray(pool)
    if count == 0:
        return pool[:0]
    usable = len(pool) // block * block
    shuffles = -(-count // usable)
    return np.concatenate([rng.permutation(pool)[:usable] for _ in range(shuffles)])[:count]


def length_buckets(lengths, bucket_boundaries, count, item="text"):
    """The length bucket of each of `count` items: bucket `i` holds lengths in
    `[bucket_boundaries[i-1], bucket_boundaries[i])`, as `tf.data.Dataset.bucket_by_sequence_length`
    draws them; a `ValueError` for lengths or boundaries that cannot bucket.

    Example:
    >>> length_buckets([3, 12, 40], [10, 20], 3).tolist()
    [0, 1, 2]
    """
    if lengths is None or bucket_boundaries is None:
        raise ValueError("lengths and bucket_boundaries must be given together.")
    lengths, boundaries = np.asarray(lengths), np.asarray(bucket_boundaries)
    if lengths.shape != (count,) or lengths.dtype.kind not in "iuf" or not np.all(np.isfinite(lengths)):
        raise ValueError(f"lengths must be {count} finite numbers, one per {item}.")
    if (
        boundaries.ndim != 1
        or boundaries.size == 0
        or boundaries.dtype.kind not in "iuf"
        or not np.all(np.isfinite(boundaries))
        or np.any(np.diff(boundaries) <= 0)
    ):
        raise ValueError(
            f"bucket_boundaries must be a non-empty increasing 1-D sequence of numbers, got {bucket_boundaries!r}."
        )
    return np.digitize(lengths, boundaries)


def group_by_class(ids):
    """Maps each distinct label id to the sorted positions holding it, as `(classes, members)`.

    Example:
    >>> classes, members = group_by_class(np.array([4, 2, 4]))
    >>> classes.tolist(), [m.tolist() for m in members]
    ([2, 4], [[1], [0, 2]])
    """
    order = np.argsort(ids, kind="stable")
    classes, starts = np.unique(ids[order], return_index=True)
    return classes, np.split(order, starts[1:])
