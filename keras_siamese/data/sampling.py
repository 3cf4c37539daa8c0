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
