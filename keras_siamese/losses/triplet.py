"""Triplet losses with online mining over a batch of class-labelled embeddings.

Every example of the batch is an anchor; its positives are the other examples with
the same label, its negatives the examples with a different label. The three losses
differ in which triplets (anchor, positive, negative) they take:

* `triplet_semihard_loss` — for each (anchor, positive) pair, the closest negative
  that is still farther than the positive (FaceNet's semi-hard negative).
* `triplet_batch_hard_loss` — for each anchor, its farthest positive and closest negative.
* `triplet_batch_all_loss` — every valid triplet.

Batches need several examples per class (P classes x K examples, e.g. from
`keras_siamese.data.class_balanced_batches`) or there are no positives to learn from.

How semi-hard mining runs (both paths give the same numbers, O(B^2) memory, and are
plain graph ops with static shapes, so they run on any device, under `tf.distribute`
and inside a caller's `jit_compile=True`):

* `semihard_triplet_terms` computes the distance matrix once and hands it to
  `_semihard_sums`, a custom gradient: the forward pass returns the `_MiningSums`
  (hinge, active pairs, d_ap, d_an, pairs) and keeps only the `[B, B]` weight matrix
  that is the hinge sum's gradient with respect to the distances.
* `_compiled_mining` (XLA) visits the anchors whose class has at most 12 examples
  (every P x K batch with K <= 12) in blocks of `_ROWS_PER_BLOCK` rows, grouped by
  class size; each anchor takes one masked minimum per class member
  (`_semihard_by_class_members`).
* Anchors of larger classes (skewed label layouts) sort their rows, 256 at a time:
  `_mine_large_classes` runs `_compiled_sorting_keys` (XLA), TensorFlow's sort (on CPU
  several times faster than XLA's), then `_compiled_mining_from_sorted` (XLA).
"""

from typing import NamedTuple

import keras
import tensorflow as tf

from keras_siamese.losses.distances import (
    check_distance,
    check_embeddings,
    check_margin,
    check_labels,
    pairwise_distance,
    same_label_mask,
)

# Anchors per mining block, the largest class mined by masked minima (larger classes
# sort their rows), and the slot counts the class-size groups round up to.
_ROWS_PER_BLOCK = 32
_ROWS_PER_SORTING_BLOCK = 256
_MAX_CLASS_SIZE_FOR_DIRECT_MINING = 12
_SLOT_COUNTS = (2, 4, 8)


class SemihardTripletTerms(NamedTuple):
    """Loss and batch statistics of one semi-hard triplet computation.

    Attributes:
        loss: mean over (anchor, positive) pairs of `max(margin + d_ap - d_an, 0)`.
        active_fraction: fraction of (anchor, positive) pairs whose term is positive.
        mean_positive_distance: mean `d_ap` over the pairs.
        mean_negative_distance: mean `d_an` of the chosen negatives.
        num_pairs: number of (anchor, positive) pairs (int32).

    Only `loss` carries gradients; the statistics are for monitoring.
    """

    loss: tf.Tensor
    active_fraction: tf.Tensor
    mean_positive_distance: tf.Tensor
    mean_negative_distance: tf.Tensor
    num_pairs: tf.Tensor


class _MiningSums(NamedTuple):
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
        return _MiningSums(*[mine + theirs for mine, theirs in zip(self, other)])


def _prepare(labels, embeddings, distance):
    """Checks inputs; returns (int64 labels [B], input dtype, float32 pdist [B, B])."""
    check_distance(distance)
    embeddings = check_embeddings(embeddings)
    batch_size = embeddings.shape[0]
    if batch_size is None:
        batch_size = tf.shape(embeddings)[0]
    labels = check_labels(labels, batch_size)
    return labels, embeddings.dtype, pairwise_distance(embeddings, distance)


def semihard_triplet_terms(labels, embeddings, margin=1.0, distance="L2"):
    """Semi-hard triplet loss and its batch statistics from one distance matrix.

    For each anchor `a` and positive `p != a`, the negative `n` is the one with the
    smallest `d(a, n)` strictly greater than `d(a, p)`; when there is none, the
    farthest negative of `a`; when `a` has no negative at all, `d_an = 0`. Values
    equal those of tensorflow-addons' `triplet_semihard_loss`, except that a batch
    without any positive pair gives loss 0 and zero gradients (TFA: NaN).

    Runs in O(B^2) memory and at most O(B^2 log B) time for any label layout,
    eagerly, under `tf.function`, under `tf.distribute` and under `jit_compile=True`.

    Args:
        labels: `[B]` or `[B, 1]` class ids (integers, or floats holding whole numbers).
        embeddings: `[B, D]` float embeddings; float16/bfloat16 are computed in float32.
        margin: margin between positive and negative distances.
        distance: `"L2"`, `"squared-L2"`, `"angular"` or a callable (see `pairwise_distance`).

    Returns:
        `SemihardTripletTerms`; `loss` has the embeddings' dtype, the rest float32.

    Example:
    >>> terms = semihard_triplet_terms([0, 0, 1, 1], [[0., 1.], [0., 2.], [1., 0.], [2., 0.]])
    >>> round(float(terms.loss), 4), float(terms.active_fraction)
    (0.2929, 0.5)
    """
    labels, dtype, pdist = _prepare(labels, embeddings, distance)
    margin = tf.cast(check_margin(margin), tf.float32)
    sums = _semihard_sums(labels, pdist, margin)
    denominator = tf.maximum(sums.pairs, 1.0)
    return SemihardTripletTerms(
        loss=tf.cast(sums.hinge / denominator, dtype),
        active_fraction=tf.stop_gradient(sums.active_pairs / denominator),
        mean_positive_distance=tf.stop_gradient(sums.positive_distance / denominator),
        mean_negative_distance=tf.stop_gradient(sums.negative_distance / denominator),
        num_pairs=tf.cast(sums.pairs, tf.int32),
    )


def _semihard_sums(labels, pdist, margin):
    """float32 `_MiningSums` of the semi-hard triplets, differentiable in `hinge` only
    (the others are piecewise constant or statistics)."""

    @tf.custom_gradient
    def sums(distances):
        values, weights = _mine_semihard(labels, distances, margin)

        def gradient(hinge_upstream, *statistics_upstream):
            del statistics_upstream  # the statistics are not differentiated
            return hinge_upstream * weights

        # Only `weights` is kept for the backward pass, not autodiff's per-op intermediates.
        return tuple(tf.cast(value, tf.float32) for value in values), gradient

    return _MiningSums(*sums(pdist))


def _mine_semihard(labels, distances, margin):
    """Semi-hard mining: float64 `_MiningSums` and `weights` [B, B], the gradient of
    the hinge sum with respect to the distances. Nothing here is differentiated."""
    if labels.shape[0] == 0:  # nothing to mine (and shape inference rejects empty scatters)
        return _MiningSums.zeros(), tf.zeros([0, 0])
    # stop_gradient keeps tapes from recording the loops; the tuning constants are
    # passed as Python values so that changing them retraces.
    distances, margin = tf.stop_gradient(distances), tf.stop_gradient(margin)
    sums, weights, class_size = _compiled_mining(
        labels, distances, margin, _ROWS_PER_BLOCK, _MAX_CLASS_SIZE_FOR_DIRECT_MINING
    )
    return _mine_large_classes(
        labels, distances, margin, class_size > _MAX_CLASS_SIZE_FOR_DIRECT_MINING,
        sums, weights, _ROWS_PER_SORTING_BLOCK,
    )


@tf.function(jit_compile=True, reduce_retracing=True)
def _compiled_mining(labels, distances, margin, rows_per_block, max_direct_class_size):
    """Mining under XLA (compiled once per batch size and constants) of the anchors
    whose class has at most `max_direct_class_size` examples: `_MiningSums`, weights as
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

    sums, weights = _MiningSums.zeros(), tf.zeros([batch, batch])
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
    """`_MiningSums` over the valid pairs, and the active mask."""
    hinge = tf.where(valid, tf.nn.relu(margin + d_ap - d_an), 0.0)
    active = hinge > 0.0
    terms = [hinge, tf.cast(active, tf.float32), d_ap, d_an, tf.cast(valid, tf.float32)]
    sums = [tf.reduce_sum(tf.where(valid, tf.cast(term, tf.float64), 0.0)) for term in terms]
    return _MiningSums(*sums), active


def _hinge_gains(active, has_negative):
    """`[R, 2J]` gradient of the hinge sum at the J positives' and J negatives' columns
    of each row: +1 at an active pair's p, -1 at its n (none when a has no negative)."""
    gain = tf.where(active, 1.0, 0.0)
    return tf.concat([gain, -tf.where(has_negative[:, None], gain, 0.0)], axis=1)


def _take(matrix, columns):
    """`matrix[a, columns[a, j]]` for a `[R, B]` matrix and `[R, J]` column indices."""
    return tf.gather(matrix, columns, batch_dims=1)


def _semihard_by_class_members(distances, negative, members, member_is_positive, margin):
    """Semi-hard mining for anchors of small classes, every class member at once.

    `members[a, j]` is the j-th example of anchor a's class. Returns the block sums,
    the positives' and chosen negatives' columns `[R, J]` and their gains `[R, 2J]`.
    """
    infinity = tf.constant(float("inf"))
    width = tf.shape(distances)[1]
    d_ap = _take(distances, members)
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
    negative_sorted = _take(negative, perm)
    negatives_before = tf.cumsum(tf.cast(negative_sorted, tf.int32), axis=1, exclusive=True)
    num_negatives = tf.reduce_sum(tf.cast(negative, tf.int32), axis=1)

    # nearest_negatives[a, k]: column of row a's k-th nearest negative (k < num_negatives[a]).
    row_offsets = tf.range(num_rows)[:, None] * width
    target = tf.where(negative_sorted, row_offsets + negatives_before, -1)
    nearest_negatives = tf.math.unsorted_segment_max(perm, target, num_rows * width)
    nearest_negatives = tf.maximum(tf.reshape(nearest_negatives, [num_rows, width]), 0)

    last = tf.maximum(num_negatives - 1, 0)[:, None]
    after = _take(nearest_negatives, tf.minimum(negatives_before, last))
    before = _take(nearest_negatives, tf.maximum(negatives_before - 1, 0))
    tied = (negatives_before > 0) & tf.equal(_take(bits, before), key_sorted)
    chosen = tf.where(tied, before, after)
    d_ap = tf.bitcast(key_sorted - 1, tf.float32)
    has_negative = num_negatives > 0
    d_an = tf.where(has_negative[:, None], _take(distances, chosen), 0.0)
    sums, active = _block_sums(d_ap, d_an, _take(positive, perm), margin)
    return sums, perm, chosen, _hinge_gains(active, has_negative)


def triplet_semihard_loss(labels, embeddings, margin=1.0, distance="L2"):
    """Triplet loss with semi-hard negative mining (FaceNet; tensorflow-addons' numbers).

    See `semihard_triplet_terms` for the definition and edge cases.

    Example:
    >>> round(float(triplet_semihard_loss([0, 0], [[0., 1.], [1., 0.]])), 4)
    2.4142
    """
    return semihard_triplet_terms(labels, embeddings, margin, distance).loss


def triplet_batch_hard_loss(labels, embeddings, margin=1.0, soft_margin=False, distance="L2"):
    """Batch-hard triplet loss: each anchor with its farthest positive and nearest negative.

    Per anchor `max(margin + d(a, hardest p) - d(a, hardest n), 0)`, or with
    `soft_margin=True` the margin-free `log1p(exp(d_ap - d_an))`, averaged over the
    anchors that have at least one positive and one negative (0, with zero
    gradients, when none has). tensorflow-addons' `triplet_hard_loss` and
    sentence-transformers' `BatchHardTripletLoss` also average over anchors without a
    positive (taking `d_ap = 0`); on P x K batches all three agree.

    Needs P x K batches (K >= 2). The hardest triplets are sensitive to label noise;
    semi-hard mining is the gentler start. Related: `triplet_semihard_loss`,
    `triplet_batch_all_loss`.

    Example:
    >>> round(float(triplet_batch_hard_loss([0, 0, 1], [[0., 0.], [3., 4.], [0., 1.]])), 4)
    3.3787
    """
    check_margin(margin)
    labels, dtype, pdist = _prepare(labels, embeddings, distance)
    same = same_label_mask(labels)
    positive = tf.linalg.set_diag(same, tf.zeros_like(same[:, 0]))
    negative = tf.logical_not(same)
    hardest_positive = tf.reduce_max(tf.where(positive, pdist, 0.0), axis=1)
    hardest_negative = tf.reduce_min(tf.where(negative, pdist, float("inf")), axis=1)
    valid = tf.reduce_any(positive, axis=1) & tf.reduce_any(negative, axis=1)
    gap = hardest_positive - tf.where(valid, hardest_negative, 0.0)
    per_anchor = tf.nn.softplus(gap) if soft_margin else tf.nn.relu(margin + gap)
    per_anchor = tf.where(valid, per_anchor, 0.0)
    count = tf.maximum(tf.reduce_sum(tf.cast(valid, tf.float32)), 1.0)
    return tf.cast(tf.reduce_sum(per_anchor) / count, dtype)


def triplet_batch_all_loss(labels, embeddings, margin=1.0, distance="L2"):
    """Batch-all triplet loss: mean of the positive terms over all valid triplets.

    Over every triplet (a, p, n) with `p != a` sharing a's label and `n` not, the
    term is `max(margin + d_ap - d_an, 0)`; the loss is the mean of the terms that
    are positive (0, with zero gradients, when none is), as sentence-transformers'
    `BatchAllTripletLoss` and Hermans et al.'s "batch all".

    Computed without the `[B, B, B]` tensor: each row's negatives are sorted once and
    prefix sums give every pair's sum over its active negatives, O(B^2 log B).

    Needs P x K batches (K >= 2). Related: `triplet_semihard_loss`, `triplet_batch_hard_loss`.

    Example:
    >>> round(float(triplet_batch_all_loss([0, 0, 1], [[0., 0.], [3., 4.], [0., 1.]])), 4)
    3.3787
    """
    labels, dtype, pdist = _prepare(labels, embeddings, distance)
    margin = tf.cast(check_margin(margin), tf.float32)
    same = same_label_mask(labels)
    negative = tf.logical_not(same)
    positive = tf.linalg.set_diag(same, tf.zeros_like(same[:, 0]))
    infinity = tf.constant(float("inf"))
    order = tf.argsort(tf.where(negative, tf.stop_gradient(pdist), infinity), axis=1)
    negative_sorted = _take(negative, order)
    ascending = tf.where(negative_sorted, _take(pdist, order), 0.0)
    prefix = tf.pad(tf.cumsum(ascending, axis=1), [[0, 0], [1, 0]])  # prefix[a, k]: k nearest
    threshold = pdist + margin  # a term is positive iff d_an < d_ap + margin
    searchable = tf.where(negative_sorted, tf.stop_gradient(ascending), infinity)
    count = tf.searchsorted(searchable, tf.stop_gradient(threshold), side="left", out_type=tf.int32)
    count = tf.where(positive, count, 0)
    pair_sums = tf.cast(count, tf.float32) * threshold - _take(prefix, count)
    total = tf.reduce_sum(tf.where(positive, pair_sums, 0.0))
    num_active = tf.maximum(tf.reduce_sum(tf.cast(count, tf.float32)), 1.0)
    return tf.cast(total / num_active, dtype)


class _TripletLoss(keras.losses.Loss):
    """Base of the Keras wrappers: `y_true` are labels, `y_pred` the embeddings."""

    def __init__(self, margin=1.0, distance="L2", name=None, **kwargs):
        check_distance(distance)
        check_margin(margin)
        super().__init__(name=name, **kwargs)
        self.margin = margin
        self.distance = distance

    def get_config(self):
        config = super().get_config()
        config.update({"margin": self.margin, "distance": self.distance})
        return config


@keras.saving.register_keras_serializable(package="keras_siamese")
class TripletSemiHardLoss(_TripletLoss):
    """Keras loss for `triplet_semihard_loss`: `y_true` labels `[B]`/`[B, 1]`, `y_pred` embeddings `[B, D]`.

    A string `distance` serialises; a callable one does not.

    Example:
    >>> loss = TripletSemiHardLoss(margin=0.5)
    >>> round(float(loss([0, 0, 1, 1], [[0., 1.], [0., 2.], [1., 0.], [2., 0.]])), 4)
    0.0429
    """

    def __init__(self, margin=1.0, distance="L2", name="triplet_semihard_loss", **kwargs):
        super().__init__(margin=margin, distance=distance, name=name, **kwargs)

    def call(self, y_true, y_pred):
        return triplet_semihard_loss(y_true, y_pred, self.margin, self.distance)


@keras.saving.register_keras_serializable(package="keras_siamese")
class TripletBatchHardLoss(_TripletLoss):
    """Keras loss for `triplet_batch_hard_loss`: `y_true` labels, `y_pred` embeddings `[B, D]`.

    Example:
    >>> loss = TripletBatchHardLoss(soft_margin=True)
    >>> round(float(loss([0, 0, 1], [[0., 0.], [3., 4.], [0., 1.]])), 4)
    2.58
    """

    def __init__(
        self, margin=1.0, soft_margin=False, distance="L2", name="triplet_batch_hard_loss", **kwargs
    ):
        super().__init__(margin=margin, distance=distance, name=name, **kwargs)
        self.soft_margin = soft_margin

    def call(self, y_true, y_pred):
        return triplet_batch_hard_loss(
            y_true, y_pred, self.margin, self.soft_margin, self.distance
        )

    def get_config(self):
        return {**super().get_config(), "soft_margin": self.soft_margin}


@keras.saving.register_keras_serializable(package="keras_siamese")
class TripletBatchAllLoss(_TripletLoss):
    """Keras loss for `triplet_batch_all_loss`: `y_true` labels, `y_pred` embeddings `[B, D]`.

    Example:
    >>> loss = TripletBatchAllLoss()
    >>> round(float(loss([0, 0, 1], [[0., 0.], [3., 4.], [0., 1.]])), 4)
    3.3787
    """

    def __init__(self, margin=1.0, distance="L2", name="triplet_batch_all_loss", **kwargs):
        super().__init__(margin=margin, distance=distance, name=name, **kwargs)

    def call(self, y_true, y_pred):
        return triplet_batch_all_loss(y_true, y_pred, self.margin, self.distance)
