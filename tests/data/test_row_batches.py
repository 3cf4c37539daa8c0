"""Duplicate-free batches of pair rows: no text twice in a batch, every row once an epoch, reproducible,
length-bucketed, sliced per replica, resumable, and streamed from a file."""

import json

import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.data import ResumeSampling, TextRows
from keras_siamese.data.row_batches import DuplicateFreeSampler, row_batches, streamed_row_batches
from tests.harness import check_bad_input


def _faq_rows(count=400, anchors=120, documents=150, seed=0):
    """Pairs with many repeated anchors and positives (FAQ logs: many queries, few answers)."""
    rng = np.random.default_rng(seed)
    return TextRows(("anchor", "positive"), (
        [f"query {rng.integers(anchors)}" for _ in range(count)],
        [f"answer {rng.integers(documents)}" for _ in range(count)],
    ))


def _repeated_texts(rows, batch):
    texts = [text for index in batch for text in rows.row(index)]
    return len(texts) - len(set(texts))


def test_no_batch_repeats_a_text_where_random_batches_do():
    rows = _faq_rows()
    sampler = DuplicateFreeSampler(rows, batch_size=32, seed=3)
    for epoch in range(3):
        batches = sampler.epoch_indices(epoch)
        assert batches.shape == (12, 32)
        assert all(_repeated_texts(rows, batch) == 0 for batch in batches)
        # Rows whose texts clash with every batch may wait past the end of a shuffle and be overtaken.
        assert len(set(batches.ravel().tolist())) >= 0.97 * batches.size
    shuffled = np.random.default_rng(3).permutation(len(rows))[: 12 * 32].reshape(12, 32)
    assert sum(_repeated_texts(rows, batch) for batch in shuffled) > 0  # what the constraint prevents


def test_rows_without_shared_texts_are_each_used_once_an_epoch():
    rows = TextRows(("anchor", "positive"), ([f"q{i}" for i in range(100)], [f"d{i}" for i in range(100)]))
    batches = DuplicateFreeSampler(rows, 10).epoch_indices(1)
    assert sorted(batches.ravel().tolist()) == list(range(100))


def test_batches_are_reproducible_per_seed_and_epoch():
    rows = _faq_rows()
    first = DuplicateFreeSampler(rows, 16, seed=1).epoch_indices(2)
    np.testing.assert_array_equal(first, DuplicateFreeSampler(rows, 16, seed=1).epoch_indices(2))
    assert not np.array_equal(first, DuplicateFreeSampler(rows, 16, seed=1).epoch_indices(3))
    assert not np.array_equal(first, DuplicateFreeSampler(rows, 16, seed=2).epoch_indices(2))


def test_distinct_texts_off_gives_plain_shuffles():
    rows = TextRows(("a", "b"), (["x"] * 8, [str(i) for i in range(8)]))
    batches = DuplicateFreeSampler(rows, 4, distinct_texts=False).epoch_indices(0)
    assert sorted(batches.ravel().tolist()) == list(range(8))


def test_length_buckets_keep_each_batch_in_one_bucket():
    rows = _faq_rows(count=300)
    lengths = np.arange(300) % 3 * 10  # buckets [0, 5), [5, 15), [15, ...)
    sampler = DuplicateFreeSampler(rows, 20, lengths=lengths, bucket_boundaries=[5, 15])
    for batch in sampler.epoch_indices(0):
        assert len(set(np.digitize(lengths[batch], [5, 15]).tolist())) == 1
        assert _repeated_texts(rows, batch) == 0


def test_row_batches_give_columns_in_order_and_scores_as_targets():
    rows = TextRows(("sentence1", "sentence2"), ([f"a{i}" for i in range(6)], [f"b{i}" for i in range(6)]),
                    labels=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0], label_column="score")
    (first, second), targets = next(iter(row_batches(rows, batch_size=6)))
    order = [int(text[1:]) for text in first.numpy().astype(str)]
    assert second.numpy().astype(str).tolist() == [f"b{i}" for i in order]
    np.testing.assert_allclose(targets.numpy(), [rows.labels[i] for i in order])


def test_every_replica_gets_its_slice_of_the_same_global_batches():
    rows = _faq_rows()
    whole = [batch for batch in row_batches(rows, batch_size=8, batches_per_epoch=3)]
    for replica in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=replica, num_replicas_in_sync=2)
        sliced = list(row_batches(rows, batch_size=8, batches_per_epoch=3, input_context=context))
        for (columns, targets), (whole_columns, whole_targets) in zip(sliced, whole):
            rows_of_replica = slice(4 * replica, 4 * replica + 4)
            for column, whole_column in zip(columns, whole_columns):
                np.testing.assert_array_equal(column.numpy(), whole_column.numpy()[rows_of_replica])


def test_a_resumed_dataset_continues_with_the_batches_it_would_have_drawn():
    rows = _faq_rows()
    uninterrupted = row_batches(rows, batch_size=16, batches_per_epoch=5)
    anchors = [columns[0].numpy().tolist() for _ in range(3) for columns, _ in uninterrupted]
    resumed = row_batches(rows, batch_size=16, batches_per_epoch=5)
    ResumeSampling(resumed).position.seek(7)  # what the callback does after a backup at step 7
    assert [columns[0].numpy().tolist() for columns, _ in resumed] == anchors[7:12]


def test_streamed_batches_read_blocks_and_never_repeat_a_text(tmp_path):
    rows = _faq_rows(count=500)
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"anchor": a, "positive": p}) + "\n" for a, p in zip(*rows.texts)))
    batches = streamed_row_batches(path, batch_size=16, buffer_rows=100, seed=4)
    assert batches.cardinality() == 500 // 16
    seen = []
    for (anchor, positive), targets in batches:
        texts = anchor.numpy().tolist() + positive.numpy().tolist()
        assert len(set(texts)) == 32 and not targets.numpy().any()
        seen += list(zip(anchor.numpy().astype(str), positive.numpy().astype(str)))
    assert set(seen) <= set(zip(*rows.texts))
    first_epoch = seen
    assert [pair for (a, p), _ in batches for pair in zip(a.numpy().astype(str), p.numpy().astype(str))] != first_epoch


BAD_INPUT = {
    "batch larger than the rows": (lambda: DuplicateFreeSampler([("a", "b")], 2), ValueError,
                                   "batch_size=2 is more than the 1 rows"),
    "one anchor for every row": (lambda: DuplicateFreeSampler([("a", "b"), ("a", "c"), ("a", "d")], 2), ValueError,
                                 "Cannot fill a batch of 2 rows without repeating a text"),
    "lengths without boundaries": (lambda: DuplicateFreeSampler([("a", "b"), ("c", "d")], 1, lengths=[1, 2]),
                                   ValueError, "lengths and bucket_boundaries must be given together"),
    "lengths of the wrong size": (lambda: DuplicateFreeSampler([("a", "b"), ("c", "d")], 1, lengths=[1],
                                                               bucket_boundaries=[2]),
                                  ValueError, "lengths must be 2 finite numbers, one per row"),
    "rows that are not TextRows": (lambda: row_batches([("a", "b")]), ValueError, "rows must be TextRows"),
    "buffer smaller than a batch": (lambda: streamed_row_batches("x.jsonl", batch_size=8, buffer_rows=4),
                                    ValueError, "buffer_rows must be an integer >= 8, got 4"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
