import collections

import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.data.balanced import ClassBalancedSampler, class_balanced_batches
from tests.harness import check_bad_input


def _corpus(sizes):
    labels = [label for label, size in enumerate(sizes) for _ in range(size)]
    return [f"text {i} of class {label}" for i, label in enumerate(labels)], labels


def _batches(dataset):
    return [(list(texts.numpy()), labels.numpy().tolist()) for texts, labels in dataset]


def test_every_batch_holds_p_distinct_classes_of_k_distinct_texts():
    texts, labels = _corpus([40, 3, 25, 9, 60, 7, 12, 30])
    dataset = class_balanced_batches(texts, labels, classes_per_batch=4, samples_per_class=3, seed=5)
    assert dataset.cardinality().numpy() == len(texts) // 12
    batches = _batches(dataset) + _batches(dataset)  # two epochs
    assert len(batches) == 2 * (len(texts) // 12)
    for batch_texts, batch_labels in batches:
        assert len(batch_texts) == 12
        per_class = collections.Counter(batch_labels)
        assert len(per_class) == 4 and set(per_class.values()) == {3}
        assert len(set(batch_texts)) == 12
        for text, label in zip(batch_texts, batch_labels):
            assert text.decode().endswith(f"of class {label}")


def test_string_labels_become_sorted_ids():
    texts = ["a", "b", "c", "d", "e", "f"]
    labels = ["zebra", "apple", "zebra", "apple", "mango", "mango"]
    for batch_texts, batch_labels in _batches(class_balanced_batches(texts, labels, 3, 2)):
        names = sorted(set(labels))
        for text, label in zip(batch_texts, batch_labels):
            assert labels[texts.index(text.decode())] == names[label]


def test_same_seed_same_batches_other_seed_or_epoch_other_batches():
    texts, labels = _corpus([20] * 10)
    first = _batches(class_balanced_batches(texts, labels, 4, 2, seed=1))
    again_dataset = class_balanced_batches(texts, labels, 4, 2, seed=1)
    assert _batches(again_dataset) == first
    assert _batches(again_dataset) != first  # second pass = second epoch
    assert _batches(class_balanced_batches(texts, labels, 4, 2, seed=2)) != first
    sampler = ClassBalancedSampler(labels, 4, 2, seed=1)
    np.testing.assert_array_equal(sampler.epoch_indices(3), sampler.epoch_indices(3))


def test_each_text_used_once_before_any_repeat_within_an_epoch():
    labels = [0] * 8 + [1] * 8
    epoch = ClassBalancedSampler(labels, 2, 4, seed=0).epoch_indices(0)
    assert epoch.shape == (2, 8)
    for cls_positions in (range(0, 8), range(8, 16)):
        first_two_batches = [p for p in epoch[:2].ravel() if p in cls_positions]
        assert sorted(first_two_batches) == list(cls_positions)


def test_rare_classes_are_cycled_and_singletons_dropped():
    labels = [0] * 10 + [1] * 2 + [2] * 10 + [3]
    sampler = ClassBalancedSampler(labels, 3, 4, seed=0, batches_per_epoch=20)
    rows = sampler.epoch_indices(0)
    assert 22 not in rows  # the single-text class
    for row in rows:
        for group in row.reshape(3, 4):
            if labels[group[0]] == 1:  # two texts: each appears, twice
                assert sorted(group.tolist()) == [10, 10, 11, 11]
            else:
                assert len(set(group.tolist())) == 4


def test_class_frequency_follows_class_size():
    labels = [0] * 1000 + [1] * 100 + [2] * 100 + [3] * 100
    rows = ClassBalancedSampler(labels, 2, 2, seed=0, batches_per_epoch=2000).epoch_indices(0)
    counts = collections.Counter(np.asarray(labels)[rows[:, ::2]].ravel().tolist())
    # Class 0 holds 10/13 of the weight: it is the first pick with p=10/13 and otherwise
    # the second with p=1, so it is in ~(10/13 + 3/13 * 1) = all batches; each small class
    # in ~1/3 of the rest.
    assert counts[0] > 0.95 * 2000
    for small in (1, 2, 3):
        assert 0.25 * 2000 < counts[small] < 0.42 * 2000


def test_length_buckets_keep_batches_balanced_and_lengths_close():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 40)
    lengths = rng.integers(1, 40, len(labels))
    sampler = ClassBalancedSampler(labels, 3, 2, seed=0, lengths=lengths, bucket_boundaries=[10, 20, 30])
    bucket = np.digitize(lengths, [10, 20, 30])
    rows = sampler.epoch_indices(0)
    assert rows.shape == (40, 6)
    for row in rows:
        assert len(set(bucket[row])) == 1
        assert sorted(collections.Counter(labels[row]).values()) == [2, 2, 2]
    assert len(set(bucket[rows[:, 0]])) == 4


def test_small_length_bucket_is_merged_into_the_next():
    labels = np.repeat(np.arange(4), 10)
    lengths = np.where(np.arange(40) % 10 == 0, 1, 50)  # bucket 0 holds one text per class
    sampler = ClassBalancedSampler(labels, 2, 2, seed=0, lengths=lengths, bucket_boundaries=[5])
    assert 0 in sampler.epoch_indices(0)  # the short text of class 0 is still drawn
    assert len(sampler._groups) == 1


@pytest.mark.parametrize(
    "texts, labels, kwargs, message",
    [
        (["a", "b"], [0, 0, 1], {}, "differ in length"),
        ([], [], {}, "empty"),
        (["a", "b", "c", "d"], [[0], [0], [1], [1]], {}, "1-D"),
        (["a", "b", "c", "d"], [0.5, 0.5, 1.0, 1.0], {}, "fractional"),
        (["a", "b", "c", "d"], [True, True, False, False], {}, "booleans"),
        (["a", "b", "c", "d"], np.array([1, 1, 0, 0], bool), {}, "booleans"),
        (["a", "b", "c", "d"], np.array([1j, 1j, 0, 0]), {}, "integers or strings"),
        (["a", "b", "c", "d"], [0, "x", 0, "x"], {}, "all be integers or all be strings"),
        (["a", "b", "c", "d"], [0, 0, 0, 0], {}, "at least 2 classes"),
        (["a", "b", "c", "d"], [0, 1, 2, 3], {}, "at least 2 classes"),
        (["a", "b", "c", "d"], [0, 0, 1, 1], {"classes_per_batch": 3}, "exceeds the 2 classes"),
        (["a", "b", "c", "d"], [0, 0, 1, 1], {"samples_per_class": 1}, "samples_per_class"),
        (["a", "b", "c", "d"], [0, 0, 1, 1], {"seed": -1}, "seed"),
        (["a", "b", 3, "d"], [0, 0, 1, 1], {}, "strings"),
        ("abcd", [0, 0, 1, 1], {}, "not a single string"),
        (["a", "b", "c", "d"], [0, 0, 1, 1], {"lengths": [1, 2, 3, 4]}, "together"),
    ],
)
def test_bad_input_raises_a_clear_value_error(texts, labels, kwargs, message):
    kwargs = {"classes_per_batch": 2, "samples_per_class": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        class_balanced_batches(texts, labels, **kwargs)


TEXTS = [f"text {i} of class {i % 3}" for i in range(30)]
TEXT_LABELS = [i % 3 for i in range(30)]


def _balanced(**kwargs):
    return class_balanced_batches(TEXTS, TEXT_LABELS, 3, 2, **kwargs)


BAD_INPUT = {
    "more classes per batch than classes": (lambda: class_balanced_batches(TEXTS, TEXT_LABELS, 4, 2),
                                            ValueError, "classes_per_batch=4 exceeds the 3 classes"),
    "global batch over workers": (lambda: class_balanced_batches(
        TEXTS, TEXT_LABELS, 3, 3, input_context=tf.distribute.InputContext(2, 0)),
        ValueError, "global batch of 9 rows does not split evenly over 2 replicas"),
    "samples_per_class 1": (lambda: class_balanced_batches(TEXTS, TEXT_LABELS, 3, 1), ValueError,
                            "samples_per_class must be an integer >= 2, got 1"),
    "samples_per_class 0": (lambda: class_balanced_batches(TEXTS, TEXT_LABELS, 3, 0), ValueError, "got 0"),
    "samples_per_class float": (lambda: class_balanced_batches(TEXTS, TEXT_LABELS, 3, 2.0), ValueError,
                                "got 2.0"),
    "classes_per_batch bool": (lambda: class_balanced_batches(TEXTS, TEXT_LABELS, True, 2), ValueError,
                               "classes_per_batch must be an integer >= 2, got True"),
    "batches_per_epoch 0": (lambda: _balanced(batches_per_epoch=0), ValueError,
                            "batches_per_epoch must be a positive integer, got 0"),
    "seed negative": (lambda: _balanced(seed=-1), ValueError, "seed must be a non-negative integer, got -1"),
    "one class to balance": (lambda: class_balanced_batches(TEXTS, [0] * 30, 2, 2), ValueError,
                             "need at least 2 classes with >= 2 examples each, found 1"),
    "lengths without bucket_boundaries": (lambda: _balanced(lengths=[1] * 30), ValueError,
                                          "lengths and bucket_boundaries must be given together"),
    "NaN lengths": (lambda: _balanced(lengths=[np.nan] * 30, bucket_boundaries=[4]), ValueError,
                    "lengths must be 30 finite numbers, one per text"),
    "string bucket_boundaries": (lambda: _balanced(lengths=[1] * 30, bucket_boundaries=["8"]), ValueError,
                                 "bucket_boundaries must be a non-empty increasing 1-D sequence of numbers"),
    "input_context not an InputContext": (lambda: _balanced(input_context=2), ValueError,
                                          "input_context must be a tf.distribute.InputContext, got int"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])


def test_whole_number_float_labels_are_accepted():
    dataset = class_balanced_batches(["a", "b", "c", "d"], np.array([3.0, 3.0, 7.0, 7.0]), 2, 2)
    assert sorted(next(iter(dataset))[1].numpy().tolist()) == [3, 3, 7, 7]


def test_keras_fit_runs_one_epoch_per_pass():
    texts, labels = _corpus([8] * 4)
    dataset = class_balanced_batches(texts, labels, 2, 2, seed=0)
    seen = []

    class Record(tf.keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(batch)

    inputs = tf.keras.Input(shape=(), dtype=tf.string)
    lengths = tf.keras.layers.Lambda(
        lambda t: tf.cast(tf.strings.length(t), tf.float32)[:, None], output_shape=(1,)
    )(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(1)(lengths))
    model.compile(loss="mse", optimizer="sgd")
    history = model.fit(dataset, epochs=2, verbose=0, shuffle=False, callbacks=[Record()])
    assert len(history.history["loss"]) == 2
    assert len(seen) == 2 * (32 // 4)


def test_each_input_pipeline_yields_its_slice_of_the_same_global_batches():
    texts, labels = _corpus([40, 3, 25, 9, 60, 7, 12, 30])
    whole = _batches(class_balanced_batches(texts, labels, 4, 3, seed=5))
    slices = [
        _batches(class_balanced_batches(texts, labels, 4, 3, seed=5, input_context=tf.distribute.InputContext(3, i)))
        for i in range(3)
    ]
    for step, (batch_texts, batch_labels) in enumerate(whole):
        assert sum((slices[i][step][0] for i in range(3)), []) == batch_texts
        assert sum((slices[i][step][1] for i in range(3)), []) == batch_labels
    with pytest.raises(ValueError, match="global batch of 12 rows does not split evenly over 5 replicas"):
        class_balanced_batches(texts, labels, 4, 3, input_context=tf.distribute.InputContext(5, 0))


def test_a_pipeline_of_several_replicas_yields_one_slice_per_replica_in_turn():
    """2 workers x 2 replicas: replica r of the global batch gets rows [3r, 3r + 3)."""
    texts, labels = _corpus([40, 3, 25, 9, 60, 7, 12, 30])
    whole = _batches(class_balanced_batches(texts, labels, 4, 3, seed=5, batches_per_epoch=4))
    for pipeline in range(2):
        dataset = class_balanced_batches(
            texts, labels, 4, 3, seed=5, batches_per_epoch=4,
            input_context=tf.distribute.InputContext(2, pipeline, num_replicas_in_sync=4),
        )
        assert int(dataset.cardinality()) == 8 and dataset.epoch_position.batches_per_epoch == 4
        replica_batches = _batches(dataset)
        for step, (batch_texts, _) in enumerate(whole):
            for local in range(2):
                replica = 2 * pipeline + local
                assert replica_batches[2 * step + local][0] == batch_texts[3 * replica : 3 * replica + 3]
