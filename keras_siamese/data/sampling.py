"""Random index helpers shared by the batch generators: per-epoch generators, cycled draws."""

import numbers

import numpy as np


def epoch_rng(seed, epoch):
    """The random generator of one epoch: same `(seed, epoch)`, same draws.

    Example:
    >>> int(epoch_rng(0, 1).integers(100)) == int(epoch_rng(0, 1).integers(100))
    True
    """
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}.")
    return np.random.default_rng([seed, epoch])


def check_seed(seed):
    """Returns `seed` if it is a non-negative integer, else raises a ValueError."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    return int(seed)


def check_count(value, name, minimum):
    """Returns `value` if it is an integer >= `minimum`, else raises a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


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
