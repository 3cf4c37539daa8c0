"""fine_tuning_optimizer's schedule against its definition, step by step; LazyAdam against
Adam's definition on the rows a batch touches, and against Keras' Adam / AdamW."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.optimizers import LazyAdam, fine_tuning_optimizer


def schedule_by_definition(step, peak, total, warmup):
    """Linear from 0 to `peak` over `warmup` steps, then a cosine from `peak` to 0 at `total`."""
    if step < warmup:
        return peak * step / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("total, warmup_fraction", [(100, 0.1), (37, 0.25), (10, 0.0)])
def test_learning_rate_follows_warmup_then_cosine_decay(total, warmup_fraction, lazy):
    optimizer = fine_tuning_optimizer(3e-4, total, warmup_fraction=warmup_fraction, lazy=lazy)
    warmup = round(warmup_fraction * total)
    for step in [0, 1, warmup // 2, warmup, warmup + 1, (warmup + total) // 2, total - 1, total, total + 5]:
        optimizer.iterations.assign(step)  # the learning rate Keras applies at that step
        got = float(optimizer.learning_rate)
        assert got == pytest.approx(schedule_by_definition(step, 3e-4, total, warmup), rel=1e-5, abs=1e-9), step


def test_adamw_with_weight_decay_plain_adam_without():
    decayed = fine_tuning_optimizer(1e-4, 10, weight_decay=0.05)
    assert isinstance(decayed, keras.optimizers.AdamW) and decayed.weight_decay == pytest.approx(0.05)
    plain = fine_tuning_optimizer(1e-4, 10, weight_decay=0)
    assert type(plain) is keras.optimizers.Adam


def test_lazy_gives_lazy_adam_with_or_without_decay():
    decayed = fine_tuning_optimizer(1e-4, 10, weight_decay=0.05, lazy=True)
    assert type(decayed) is LazyAdam and decayed.weight_decay == pytest.approx(0.05)
    plain = fine_tuning_optimizer(1e-4, 10, weight_decay=0, lazy=True)
    assert type(plain) is LazyAdam and plain.weight_decay is None


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"learning_rate": 0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"learning_rate": "1e-4"}, "learning_rate"),
        ({"total_steps": 0}, "total_steps"),
        ({"total_steps": 2.5}, "total_steps"),
        ({"warmup_fraction": 1.0}, "warmup_fraction"),
        ({"warmup_fraction": -0.1}, "warmup_fraction"),
        ({"weight_decay": -1}, "weight_decay"),
        ({"weight_decay": float("inf")}, "weight_decay"),
    ],
)
def test_bad_settings_say_which(arguments, message):
    with pytest.raises(ValueError, match=message):
        fine_tuning_optimizer(**{"learning_rate": 1e-4, "total_steps": 10, **arguments})


def lazy_adam_by_definition(table, gradients, learning_rates, weight_decay=0.0, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """`table` after LazyAdam's steps, written from the definition: at step t, the rows an
    (indices, values) gradient names (duplicates summed) are decayed, then get Adam's step with
    bias correction; every other row, and its moments, stays as it was."""
    table = table.astype(np.float64)
    m, v = np.zeros_like(table), np.zeros_like(table)
    for t, ((indices, values), lr) in enumerate(zip(gradients, learning_rates), start=1):
        summed = {}
        for row, value in zip(indices, values):
            summed[row] = summed.get(row, 0.0) + value.astype(np.float64)
        for row, g in summed.items():
            table[row] -= lr * weight_decay * table[row]
            m[row] = beta_1 * m[row] + (1 - beta_1) * g
            v[row] = beta_2 * v[row] + (1 - beta_2) * g**2
            m_hat, v_hat = m[row] / (1 - beta_1**t), v[row] / (1 - beta_2**t)
            # Keras' epsilon is the paper's "epsilon hat", added to sqrt(v) before the bias correction.
            table[row] -= lr * m_hat / (np.sqrt(v_hat) + epsilon / np.sqrt(1 - beta_2**t))
    return table


def embedding_and_kernel(seed=0):
    """A [50, 4] embedding table and a [4, 3] dense kernel."""
    rng = np.random.default_rng(seed)
    return (
        tf.Variable(rng.normal(size=(50, 4)).astype("float32"), name="table"),
        tf.Variable(rng.normal(size=(4, 3)).astype("float32"), name="kernel"),
    )


def gradients_of_lookup(table, kernel, ids, seed):
    """The gradients of a loss through `tf.gather(table, ids)` and `kernel`: an IndexedSlices, a tensor."""
    weights = tf.constant(np.random.default_rng(seed).normal(size=(len(ids), 3)).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.tanh(tf.gather(table, ids) @ kernel) * weights)
    return tape.gradient(loss, [table, kernel])


# Rows 40..49 are never looked up; each step repeats some ids.
STEP_IDS = [[3, 7, 7, 12, 3, 3], [0, 1, 2, 39, 1], [7, 20, 21, 22, 20], [5, 5, 5, 5], [12, 30, 31, 0, 39, 39]]


@pytest.mark.parametrize("weight_decay", [None, 0.1])
def test_touched_rows_follow_the_definition_untouched_rows_never_move(weight_decay):
    table, kernel = embedding_and_kernel()
    initial = table.numpy()
    reference_kernel = tf.Variable(kernel)
    # A scheduled learning rate, different at every step: lr(step) = 0.01 * 0.7**step.
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=1, decay_rate=0.7)
    lazy = LazyAdam(schedule, weight_decay=weight_decay)
    reference = (keras.optimizers.AdamW(schedule, weight_decay=weight_decay) if weight_decay
                 else keras.optimizers.Adam(schedule))

    recorded = []
    for step, ids in enumerate(STEP_IDS):
        table_gradient, kernel_gradient = gradients_of_lookup(table, kernel, ids, seed=step)
        assert isinstance(table_gradient, tf.IndexedSlices)
        recorded.append((table_gradient.indices.numpy(), table_gradient.values.numpy()))
        lazy.apply([table_gradient, kernel_gradient], [table, kernel])
        reference.apply([kernel_gradient], [reference_kernel])

        expected = lazy_adam_by_definition(
            initial, recorded, [0.01 * 0.7**s for s in range(step + 1)], weight_decay=weight_decay or 0.0
        )
        np.testing.assert_allclose(table.numpy(), expected, rtol=1e-6, atol=1e-6)
        touched = np.unique(np.concatenate(STEP_IDS[: step + 1]))
        untouched = np.setdiff1d(np.arange(50), touched)
        np.testing.assert_array_equal(table.numpy()[untouched], initial[untouched])
        np.testing.assert_allclose(kernel.numpy(), reference_kernel.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("weight_decay", [None, 0.05])
def test_first_step_is_keras_adam_on_touched_rows(weight_decay):
    """At step 1 every moment is 0, so on the rows the batch touches LazyAdam is Keras' Adam
    (AdamW with weight decay) on the densified gradient. Adam leaves untouched rows as they
    were too (zero gradient, zero moments); AdamW decays them, LazyAdam does not."""
    table, kernel = embedding_and_kernel()
    initial = table.numpy()
    dense_table, dense_kernel = tf.Variable(table), tf.Variable(kernel)
    lazy = LazyAdam(0.01, weight_decay=weight_decay)
    dense = (keras.optimizers.AdamW(0.01, weight_decay=weight_decay) if weight_decay
             else keras.optimizers.Adam(0.01))

    ids = STEP_IDS[0]
    table_gradient, kernel_gradient = gradients_of_lookup(table, kernel, ids, seed=0)
    lazy.apply([table_gradient, kernel_gradient], [table, kernel])
    dense.apply([tf.convert_to_tensor(table_gradient), kernel_gradient], [dense_table, dense_kernel])

    touched = np.unique(ids)
    untouched = np.setdiff1d(np.arange(50), touched)
    np.testing.assert_allclose(table.numpy()[touched], dense_table.numpy()[touched], rtol=1e-6, atol=1e-7)
    assert np.all(table.numpy()[touched] != initial[touched])
    np.testing.assert_array_equal(table.numpy()[untouched], initial[untouched])
    if weight_decay:
        np.testing.assert_allclose(dense_table.numpy()[untouched], initial[untouched] * (1 - 0.01 * weight_decay),
                                   rtol=1e-6)
    else:
        np.testing.assert_array_equal(dense_table.numpy()[untouched], initial[untouched])
    np.testing.assert_allclose(kernel.numpy(), dense_kernel.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("jit_compile", [False, True])  # XLA: what `jit_compile="auto"` picks on a GPU
def test_in_a_keras_model_unused_rows_stay_and_the_optimizer_saves(tmp_path, jit_compile):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((5,), dtype="int32"),
        keras.layers.Embedding(50, 4),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(1),
    ])
    # With weight decay, AdamW would shrink every row each step; LazyAdam only the looked-up ones.
    model.compile(optimizer=LazyAdam(1e-2, weight_decay=0.1), loss="mse", jit_compile=jit_compile)
    initial = model.layers[0].embeddings.numpy()
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 20, size=(32, 5)), rng.normal(size=(32, 1))
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)

    assert np.isfinite(history.history["loss"]).all()
    table = model.layers[0].embeddings.numpy()
    used = np.unique(x)
    np.testing.assert_array_equal(table[20:], initial[20:])
    assert np.all(table[used] != initial[used])

    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(reloaded.optimizer) is LazyAdam
    assert float(reloaded.optimizer.learning_rate) == pytest.approx(1e-2)
    assert reloaded.optimizer.weight_decay == pytest.approx(0.1)


def test_config_round_trip_and_no_amsgrad():
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=100)
    optimizer = LazyAdam(schedule, beta_1=0.8, weight_decay=0.02)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is LazyAdam
    assert restored.get_config() == optimizer.get_config()
    assert "amsgrad" not in optimizer.get_config()
    with pytest.raises(ValueError, match="amsgrad"):
        LazyAdam(amsgrad=True)


def test_exclude_from_weight_decay_holds_for_sparse_and_dense_variables():
    gradients = gradients_of_lookup(*embedding_and_kernel(), STEP_IDS[0], seed=0)
    excluded = LazyAdam(0.01, weight_decay=0.05)
    excluded.exclude_from_weight_decay(var_names=["table", "kernel"])
    results = []
    for optimizer in [excluded, LazyAdam(0.01)]:
        variables = embedding_and_kernel()
        optimizer.apply(gradients, variables)
        results.append([variable.numpy() for variable in variables])
    for with_exclusion, without_decay in zip(*results):
        np.testing.assert_array_equal(with_exclusion, without_decay)
