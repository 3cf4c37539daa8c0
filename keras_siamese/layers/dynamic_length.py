"""Dynamic sequence length: trim a packed batch to its longest text, rounded up to a bucket."""

import tensorflow as tf

from keras_siamese.checks import is_integer


def default_length_buckets(sequence_length):
    """Bucket lengths for `sequence_length`: multiples of 4 up to 64, of 16 up to 128, then of 32.

    Rounding a batch's longest text up to the next bucket wastes at most a
    quarter of the compute on padding past 16 tokens, while a compiled graph
    (XLA, or any cache keyed on shapes) sees at most a few dozen lengths.

    Example:
    >>> default_length_buckets(100)
    (4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 64, 80, 96, 100)
    """
    buckets = list(range(4, 65, 4)) + list(range(80, 129, 16))
    buckets += list(range(160, sequence_length + 1, 32))
    buckets = [length for length in buckets if length < sequence_length]
    return tuple(buckets) + (sequence_length,)


def check_length_buckets(length_buckets, sequence_length):
    """The sorted bucket tuple to trim to, always ending at `sequence_length`.

    `None` gives `default_length_buckets(sequence_length)`.
    """
    if length_buckets is None:
        return default_length_buckets(sequence_length)
    wanted = f"length_buckets must be a list of integer lengths, got {length_buckets!r}."
    if isinstance(length_buckets, (str, bytes)) or not hasattr(length_buckets, "__iter__"):
        raise ValueError(wanted)
    given = list(length_buckets)
    if not all(is_integer(length) for length in given):
        raise ValueError(wanted)
    given = [int(length) for length in given]
    buckets = sorted(set(given))
    if not buckets or buckets[0] < 1 or buckets[-1] > sequence_length:
        raise ValueError(
            "length_buckets must be positive lengths no larger than "
            f"sequence_length={sequence_length}, got {given}."
        )
    if buckets[-1] != sequence_length:
        buckets.append(sequence_length)
    return tuple(buckets)


def bucketed_length(padding_mask, buckets):
    """The smallest bucket holding the longest row of `padding_mask` ([batch, length])."""
    longest = tf.reduce_max(tf.reduce_sum(tf.cast(padding_mask, tf.int32), axis=1))
    buckets = tf.constant(buckets, tf.int32)
    # An empty batch has longest = 0 (reduce_max of nothing is int32.min): smallest bucket.
    return tf.reduce_min(tf.where(buckets >= longest, buckets, buckets[-1]))


def trim_to_bucket(padding_mask, buckets, *tensors):
    """Cuts `padding_mask` and `tensors` ([batch, length, ...]) to `bucketed_length`.

    Only trailing padding is removed, so an encoder that masks padding gives
    the same outputs for the kept positions.

    Example:
    >>> mask = tf.constant([[1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]])
    >>> [t.shape for t in trim_to_bucket(mask, (4, 6), mask)]
    [TensorShape([2, 4]), TensorShape([2, 4])]
    """
    length = bucketed_length(padding_mask, buckets)
    return tuple(tensor[:, :length] for tensor in (padding_mask,) + tensors)
