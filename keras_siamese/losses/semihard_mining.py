"""Semi-hard triplet mining engines: the batch's `MiningSums` and their gradient, in O(B^2) memory.

Both engines give the same numbers in O(B^2) memory, and are plain graph ops with
static shapes, so they run on any device, under `tf.distribute` and inside a caller's
`jit_compile=True`:

* `keras_siamese.losses.semihard_triplet_terms` computes the distance matrix once and
  hands it to `semihard_sums`, a custom gradient: the forward pass returns the `MiningSums`
  (hinge, active pairs, d_ap, d_an, pairs) and keeps only the `[B, B]` weight matrix
  that is the hinge sum's gradient with respect to the distances.
* `_compiled_mining` (XLA) visits the anchors whose class has at most 12 examples
  (every P x K batch with K <= 12; `MiningBlocks`) in blocks of 32 rows, grouped by
  class size; each anchor takes one masked minimum per class member
  (`_semihard_by_class_members`).
* Anchors of larger classes (skewed label layouts) sort their rows, 256 at a time:
  `_mine_large_classes` runs `_compiled_sorting_keys` (XLA), TensorFlow's sort (on CPU
  several times faster than XLA's), then `_compiled_mining_from_sorted` (XLA).
"""

from typing import NamedTuple

import tensorflow as tf


class MiningBlocks(NamedTuple):
    """How many anchors each mining step takes: `rows_per_block` anchors of small classes
    (at most `max_direct_class_size` examples, mined by masked minima), and
    `rows_per_sorting_block` anchors of larger classes (which sort their rows)."""

    rows_per_block: int = 32
    rows_per_sorting_block: int = 256
    max_direct_class_size: int = 12


# The class-size groups that small classes round up to (one compiled loop each).
_SLOT_COUNTS = (2, 4, 8)


class MiningSums(NamedTuple):
    """Sums over the valid (anchor, positive) pairs of a block or a batch (float64 while
    mining: XLA sums in order, and float32 would drift over B^2 pairs)."""

    hinge: tf.Tensor  # sum of max(margin + d_ap - d_an, 0): the only differentiable sum
    active_pairs: tf.Tensor  # pairs whose hinge is positive
    positive_distance: tf.Tensor  # sum of d_ap
    negative_distance: tf.Tensor  # sum of d_an of the chosen negatives
    pairs: tf.Tensor

    @classmethod
    def zeros(cls):
        return cls(*[tf.zeros([], tf.float64)] * len(cls._fields))

    def plus(self, other):
        return MiningSums(*[mine + theirs for mine, theirs in zip(self, other)])


def semihard_sums(labels, pdist, margin, blocks=MiningBlocks()):
    """float32 `MiningSums` of the semi-hard triplets of int64 `labels` [B] and float32
    distances `pdist` [B, B], differentiable in `hinge` only (the others are piecewise
    constant or statistics). `blocks` sets how many anchors each step mines.

    Example:
    >>> distances = tf.constant([[0.0, 1.0, 2.0], [1.0, 0.0, 1.5], [2.0, 1.5, 0.0]])
    >>> sums = semihard_sums(tf.constant([0, 0, 1], tf.int64), distances, tf.constant(1.0))
    >>> float(sums.hinge), float(sums.pairs)
    (0.5, 2.0)
    """

    @tf.custom_gradient
    def sums(distances):
        values, weights = _mine_semihard(labels, distances, margin, blocks)

        def gradient(hinge_upstream, *statistics_upstream):
            del statistics_upstream  # the statistics are not differentiated
            return hinge_upstream * weights

        # Only `weights` is kept for the backward pass, not autodiff's per-op intermediates.
        return tuple(tf.cast(value, tf.float32) for value in values), gradient

    return MiningSums(*sums(pdist))


def _mine_semihard(labels, distances, margin, blocks):
    """Semi-hard mining: float64 `MiningSums` and `weights` [B, B], the gradient of
    the hinge sum with respect to the distances. Nothing here is differentiated."""
    if labels.shape[0] == 0:  # nothing to mine (and shape inference rejects empty scatters)
        return MiningSums.zeros(), tf.zeros([0, 0])
    # stop_gradient keeps tapes from recording the loops; the block sizes are passed
    # as Python values, so other sizes trace again.
    distances, margin = tf.stop_gradient(distances), tf.stop_gradient(margin)
    sums, weights, class_size = _compiled_mining(
        labels, distances, margin, blocks.rows_per_block, blocks.max_direct_class_size
    )
    return _mine_large_classes(
        labels, distances, margin, class_size > blocks.max_direct_class_size,
        sums, weights, blocks.rows_per_sorting_block,
    )


@tf.function(jit_compile=True, reduce_retracing=True)
def _compiled_mining(labels, distances, margin, rows_per_block, max_direct_class_size):
    """Mining under XLA (compiled once per batch size and constants) of the anchors
    whose class has at most `max_direct_class_size` examples: `MiningSums`, weights as
    in `_mine_semihard` (the rows of other anchors stay 0), and each example's class size."""
    batch = tf.shape(labels)[0]
    order, class_start, class_size = _class_extents(labels)
    # Anchors are visited in groups of growing class size, one group per slot count
    # (class sizes up to it); anchors of larger classes are left to `_mine_large_classes`.
    slot_counts = sorted({min(n, max_direct_class_size) for n in _SLOT_COUNTS} | {max_direct_class_size})
    group = tf.reduce_sum(tf.cast(class_size[:, None] > slot_counts, tf.int32), axis=1)
    visit = tf.argsort(group, stable=True)

    def mine_by_class_members(num_slots):
        slots = tf.range(num_slots)

        def mine(anchors, block_distances, negative, positive, valid):
            del positive  # this path finds the positives among the class members
            start = tf.gather(class_start, anchors)[:, None]
            members = tf.gather(order, tf.minimum(start + slots, batch - 1))
            is_positive = (
                valid[:, None]
                & (slots < tf.gather(class_size, anchors)[:, None])
                & (members != anchors[:, None])
            )
            return _semihard_by_class_members(block_distances, negative, members, is_positive, margin)

        return mine

    def mine_rows(first, last, mine, sums, weights):
        """Mines the anchors `visit[first:last]`, adding to `sums` and `weights`."""

        def mine_block(start, sums, weights):
            rows = start + tf.range(rows_per_block)
            valid = rows < last
            anchors = tf.gather(visit, tf.minimum(rows, batch - 1))
            negative, positive = _block_masks(labels, anchors, valid)
            block_sums, positives, negatives, gains = mine(
                anchors, tf.gather(distances, anchors), negative, positive, valid
            )
            rows = tf.broadcast_to(anchors[:, None], tf.shape(positives))
            indices = tf.stack(
                [tf.concat([rows, rows], 1), tf.concat([positives, negatives], 1)], axis=-1
            )
            weights = tf.tensor_scatter_nd_add(weights, indices, gains)
            return start + rows_per_block, sums.plus(block_sums), weights

        _, sums, weights = tf.while_loop(
            lambda start, *_: start < last, mine_block, (first, sums, weights)
        )
        return sums, weights

    sums, weights = MiningSums.zeros(), tf.zeros([batch, batch])
    first = tf.constant(0)
    for index, num_slots in enumerate(slot_counts):
        last = tf.reduce_sum(tf.cast(group <= index, tf.int32))
        sums, weights = mine_rows(first, last, mine_by_class_members(num_slots), sums, weights)
        first = last
    return sums, weights, class_size


def _mine_large_classes(labels, distances, margin, is_anchor, sums, weights, rows_per_block):
    """Adds the mining of the anchors where `is_anchor` (any class size) to `sums` and
    `weights`, sorting their rows `rows_per_block` at a time.

    Each block's rows are sorted between two XLA-compiled steps whose shapes stay
    `[rows_per_block, B]` (the last block is padded), so they compile once.
    """
    batch = tf.shape(labels)[0]
    num_anchors = tf.reduce_sum(tf.cast(is_anchor, tf.int32))
    anchors_first = tf.argsort(tf.cast(~is_anchor, tf.int32), stable=True)

    def mine_block(first, sums, weights):
        rows = first + tf.range(rows_per_block)
        valid = rows < num_anchors
        block = tf.gather(anchors_first, tf.minimum(rows, batch - 1))
        keys = _compiled_sorting_keys(labels, distances, block)
        block_sums, block_weights = _compiled_mining_from_sorted(
            labels, distances, block, valid, tf.sort(keys, axis=1), margin
        )
        # Padded rows have zero weights, so adding them (to any anchor's row) is harmless.
        weights = tf.tensor_scatter_nd_add(weights, block[:, None], block_weights)
        return first + rows_per_block, sums.plus(block_sums), weights

    _, sums, weights = tf.while_loop(
        lambda first, *_: first < num_anchors, mine_block, (tf.constant(0), sums, weights)
    )
    return sums, weights


def _block_masks(labels, anchors, valid=None):
    """`[R, B]` masks of the negatives and (for valid rows) the positives of `anchors`."""
    negative = tf.gather(labels, anchors)[:, None] != labels
    positive = ~negative & (tf.range(tf.shape(labels)[0]) != anchors[:, None])
    if valid is not None:
        positive &= valid[:, None]
    return negative, positive


@tf.function(jit_compile=True, reduce_retracing=True)
def _compiled_sorting_keys(labels, distances, anchors):
    negative, _ = _block_masks(labels, anchors)
    return _sorting_keys(tf.gather(distances, anchors), negative)


@tf.function(jit_compile=True, reduce_retracing=True)
def _compiled_mining_from_sorted(labels, distances, anchors, valid, sorted_keys, margin):
    """Block sums and the block's dense weight rows `[R, B]` from its sorted keys."""
    negative, positive = _block_masks(labels, anchors, valid)
    block_distances = tf.gather(distances, anchors)
    sums, positives, negatives, gains = _semihard_from_sorted(
        block_distances, negative, positive, sorted_keys, margin
    )
    num_rows, width = tf.shape(block_distances)[0], tf.shape(block_distances)[1]
    rows = tf.broadcast_to(tf.range(num_rows)[:, None], tf.shape(gains))
    indices = tf.stack([rows, tf.concat([positives, negatives], 1)], axis=-1)
    return sums, tf.scatter_nd(indices, gains, [num_rows, width])


def _class_extents(labels):
    """`order` grouping the examples by class (stable), and for each example where its
    class starts in `order` and its size. O(B log B); XLA's searchsorted is O(B^2)."""
    batch = tf.shape(labels)[0]
    order = tf.argsort(labels, stable=True)
    sorted_labels = tf.gather(labels, order)
    is_first = tf.concat([[True], sorted_labels[1:] != sorted_labels[:-1]], axis=0)
    class_index = tf.cumsum(tf.cast(is_first, tf.int32)) - 1  # per sorted position
    positions = tf.range(batch)
    starts = tf.math.unsorted_segment_min(positions, class_index, batch)
    sizes = tf.math.unsorted_segment_sum(tf.ones_like(positions), class_index, batch)
    class_index = tf.gather(class_index, tf.math.invert_permutation(order))  # per example
    return order, tf.gather(starts, class_index), tf.gather(sizes, class_index)


def _block_sums(d_ap, d_an, valid, margin):
    """`MiningSums` over the valid pairs, and the active mask."""
    hinge = tf.where(valid, tf.nn.relu(margin + d_ap - d_an), 0.0)
    active = hinge > 0.0
    terms = [hinge, tf.cast(active, tf.float32), d_ap, d_an, tf.cast(valid, tf.float32)]
    sums = [tf.reduce_sum(tf.where(valid, tf.cast(term, tf.float64), 0.0)) for term in terms]
    return MiningSums(*sums), active


def _hinge_gains(active, has_negative):
    """`[R, 2J]` gradient of the hinge sum at the J positives' and J negatives' columns
    of each row: +1 at an active pair's p, -1 at its n (none when a has no negative)."""
    gain = tf.where(active, 1.0, 0.0)
    return tf.concat([gain, -tf.where(has_negative[:, None], gain, 0.0)], axis=1)


def take_columns(matrix, columns):
    """`matrix[a, columns[a, j]]` for a `[R, B]` matrix and `[R, J]` column indices."""
    return tf.gather(matrix, columns, batch_dims=1)


def _semihard_by_class_members(distances, negative, members, member_is_positive, margin):
    """Semi-hard mining for anchors of small classes, every class member at once.

    `members[a, j]` is the j-th example of anchor a's class. Returns the block sums,
    the positives' and chosen negatives' columns `[R, J]` and their gains `[R, 2J]`.
    """
    infinity = tf.constant(float("inf"))
    width = tf.shape(distances)[1]
    d_ap = take_columns(distances, members)
    # Non-negatives at -1 drop out of `> d_ap` and `== d_an` below (d_ap >= 0, and
    # d_an >= 0 whenever the row has a negative; otherwise its column is unused).
    masked = tf.where(negative, distances, -1.0)
    farthest = tf.reduce_max(masked, axis=1)
    has_negative = farthest >= 0.0
    # [R, J, B] comparisons, fused by XLA into the reductions (never materialised).
    row = masked[:, None, :]
    nearest = tf.reduce_min(tf.where(row > d_ap[:, :, None], row, infinity), axis=2)
    d_an = tf.where(nearest < infinity, nearest, farthest[:, None])
    # The first negative column at distance d_an (argmin's and argmax's choice).
    chosen = tf.reduce_min(tf.where(row == d_an[:, :, None], tf.range(width), width - 1), axis=2)
    d_an = tf.where(has_negative[:, None], d_an, 0.0)
    sums, active = _block_sums(d_ap, d_an, member_is_positive, margin)
    return sums, members, chosen, _hinge_gains(active, has_negative)


def _sorting_keys(distances, negative):
    """int64 `[R, B]` keys whose ascending order is `_semihard_from_sorted`'s row order:
    `key << 32 | column`, non-negatives keyed one float step above their distance
    (one sort of these is faster than argsort plus a gather)."""
    bits = tf.bitcast(distances, tf.int32)  # monotone in the distance, distances >= 0
    keys = tf.where(negative, bits, bits + 1)
    columns = tf.cast(tf.range(tf.shape(distances)[1]), tf.int64)
    return tf.bitwise.left_shift(tf.cast(keys, tf.int64), 32) + columns


def _semihard_from_sorted(distances, negative, positive, sorted_keys, margin):
    """Semi-hard mining for any label layout from each row's sorted `_sorting_keys`.

    Rows are sorted with non-negatives keyed one float step above their distance,
    so a negative at the same distance as a positive sorts before it. For a positive
    at sorted position i with k negatives before it, the semi-hard negative is the
    k-th nearest negative, unless the (k-1)-th lies exactly one float step above the
    positive's distance (tied with its key), in which case it is that one; with no
    k-th nearest negative it is the farthest. Returns the block sums, the columns of
    the positives (in sorted order) and of their negatives `[R, B]`, and the gains
    `[R, 2B]`.
    """
    num_rows, width = tf.shape(distances)[0], tf.shape(distances)[1]
    bits = tf.bitcast(distances, tf.int32)
    perm = tf.cast(tf.bitwise.bitwise_and(sorted_keys, 0xFFFFFFFF), tf.int32)
    key_sorted = tf.cast(tf.bitwise.right_shift(sorted_keys, 32), tf.int32)
    negative_sorted = take_columns(negative, perm)
    negatives_before = tf.cumsum(tf.cast(negative_sorted, tf.int32), axis=1, exclusive=True)
    num_negatives = tf.reduce_sum(tf.cast(negative, tf.int32), axis=1)

    # nearest_negatives[a, k]: column of row a's k-th nearest negative (k < num_negatives[a]).
    row_offsets = tf.range(num_rows)[:, None] * width
    target = tf.where(negative_sorted, row_offsets + negatives_before, -1)
    nearest_negatives = tf.math.unsorted_segment_max(perm, target, num_rows * width)
    nearest_negatives = tf.maximum(tf.reshape(nearest_negatives, [num_rows, width]), 0)

    last = tf.maximum(num_negatives - 1, 0)[:, None]
    after = take_columns(nearest_negatives, tf.minimum(negatives_before, last))
    before = take_columns(nearest_negatives, tf.maximum(negatives_before - 1, 0))
    tied = (negatives_before > 0) & tf.equal(take_columns(bits, before), key_sorted)
    chosen = tf.where(tied, before, after)
    d_ap = tf.bitcast(key_sorted - 1, tf.float32)
    has_negative = num_negatives > 0
    d_an = tf.where(has_negative[:, None], take_columns(distances, chosen), 0.0)
    sums, active = _block_sums(d_ap, d_an, take_columns(positive, perm), margin)
    return sums, perm, chosen, _hinge_gains(active, has_negative)
