import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.data import class_balanced_batches
from keras_siamese.models import TripletSemiHard


@pytest.fixture
def model(tiny_encoder_factory):
    keras.utils.set_random_seed(0)
    model = TripletSemiHard.from_encoder(
        tiny_encoder_factory(), pooling="mean", hidden_units=(16,), output_units=16, margin=0.5
    )
    model.compile(optimizer=keras.optimizers.Adam(2e-3))  # 5e-3 collapsed every embedding to one point
    return model


@pytest.fixture
def batches(glosses):
    texts, labels = glosses
    return class_balanced_batches(texts, labels, classes_per_batch=8, samples_per_class=4, seed=1, batches_per_epoch=25)


def _fixed_batches(batches, count=4):
    texts, labels = zip(*[(t.numpy(), l.numpy()) for t, l in batches.take(count)])
    return tf.data.Dataset.from_tensor_slices((np.concatenate(texts), np.concatenate(labels))).batch(32)


def test_fit_lowers_the_loss_and_reports_mining_metrics(model, batches):
    held = _fixed_batches(batches)
    before = model.evaluate(held, return_dict=True, verbose=0)
    history = model.fit(batches, epochs=4, shuffle=False, verbose=0)
    after = model.evaluate(held, return_dict=True, verbose=0)
    # Mean pooling, as the main job trains from scratch: a random tiny ALBERT's
    # pooled (tanh) output is nearly the same for every text and barely moves in
    # 100 steps. Training spreads the classes: loss down, negatives pushed out.
    assert after["loss"] < before["loss"] - 0.02, (before, after)
    gap = lambda logs: logs["negative_distance"] - logs["positive_distance"]  # noqa: E731
    assert gap(after) > gap(before) + 0.02, (before, after)
    for name in ("active_triplets", "positive_distance", "negative_distance"):
        assert name in history.history and np.isfinite(history.history[name]).all()
    assert 0.0 <= after["active_triplets"] <= 1.0


def test_active_triplets_metric_counts_margin_violations(model, glosses):
    """The metric against a plain loop over one batch's embeddings."""
    texts, labels = glosses
    batch_texts, batch_labels = np.array(texts[:6] + texts[100:106], dtype=object), np.r_[labels[:6], labels[100:106]]
    logs = model.evaluate(batch_texts, batch_labels, batch_size=12, return_dict=True, verbose=0)
    emb = model.predict(batch_texts, verbose=0).astype("float64")
    dist = lambda i, j: float(np.sqrt(((emb[i] - emb[j]) ** 2).sum()))  # noqa: E731
    active = total = 0
    for a in range(12):
        negatives = sorted(dist(a, n) for n in range(12) if batch_labels[n] != batch_labels[a])
        for p in range(12):
            if p == a or batch_labels[p] != batch_labels[a]:
                continue
            farther = [d for d in negatives if d > dist(a, p)]
            negative = farther[0] if farther else negatives[-1]
            active += 0.5 + dist(a, p) - negative > 0
            total += 1
    assert logs["active_triplets"] == pytest.approx(active / total, abs=1e-6)


def test_checkpoints_load_and_training_resumes(model, batches, tmp_path):
    keras_path, weights_path = tmp_path / "ckpt.keras", tmp_path / "ckpt.weights.h5"
    model.fit(
        batches,
        epochs=1,
        verbose=0,
        callbacks=[
            keras.callbacks.ModelCheckpoint(keras_path),
            keras.callbacks.ModelCheckpoint(weights_path, save_weights_only=True),
        ],
    )
    probe = ["a domestic dog", "", "to move fast", "x " * 200]
    expected = model.predict(probe, verbose=0)

    restored = keras.saving.load_model(keras_path)
    assert isinstance(restored, TripletSemiHard) and restored.margin == 0.5
    np.testing.assert_allclose(restored.predict(probe, verbose=0), expected, atol=1e-6)
    assert int(restored.optimizer.iterations) == 25
    restored.fit(batches.take(2), epochs=1, verbose=0)
    assert int(restored.optimizer.iterations) == 27

    model.load_weights(weights_path)
    np.testing.assert_allclose(model.predict(probe, verbose=0), expected, atol=1e-6)


def test_a_failed_save_keeps_the_previous_checkpoint(model, tmp_path, monkeypatch):
    path = tmp_path / "ckpt.keras"
    model.save(path)
    original = path.read_bytes()

    def crash_mid_write(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "save", crash_mid_write)
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.keras"]


def test_the_next_save_removes_partials_that_killed_saves_left(model, tmp_path):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name in (f".epoch03.keras.partial-{dead.pid}-x1.keras", f".latest.weights.h5.partial-{dead.pid}-x2.weights.h5"):
        (tmp_path / name).write_bytes(b"half a zip")
    alive = tmp_path / f".other.keras.partial-{os.getpid()}-x3.keras"  # a live writer's: kept
    alive.write_bytes(b"being written")
    model.save_weights(tmp_path / "epoch01.weights.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["epoch01.weights.h5", alive.name])


def test_compiled_loss_replaces_the_default(model, batches):
    model.compile(optimizer="adam", loss=lambda labels, embeddings: 7.0 + 0.0 * tf.reduce_sum(embeddings))
    logs = model.evaluate(batches.take(2), return_dict=True, verbose=0)
    assert logs["loss"] == pytest.approx(7.0)


def test_missing_labels_is_a_clear_error(model):
    with pytest.raises(ValueError, match="no labels"):
        model.fit(tf.data.Dataset.from_tensor_slices(["a", "b"]).batch(2), verbose=0)


@pytest.mark.parametrize("pooling", ["mean", "pooled"])
def test_the_pooler_trains_only_when_pooling_reads_it(tiny_encoder_factory, batches, pooling, tmp_path):
    encoder = tiny_encoder_factory()
    model = TripletSemiHard.from_encoder(encoder, pooling=pooling, hidden_units=(), output_units=8)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    pooler = encoder.backbone.pooled_dense
    assert pooler.trainable == (pooling == "pooled")
    before = pooler.get_weights()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(batches, epochs=1, steps_per_epoch=2, shuffle=False, verbose=0)
    assert not [w for w in caught if "Gradients do not exist" in str(w.message)]
    changed = any(not np.array_equal(a, b) for a, b in zip(before, pooler.get_weights()))
    assert changed == (pooling == "pooled")
    # A checkpoint keeps the setting, so resumed training does not train the pooler either.
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    (reloaded_encoder,) = [layer for layer in reloaded.layers if hasattr(layer, "pooler_trainable")]
    assert reloaded_encoder.backbone.pooled_dense.trainable == (pooling == "pooled")


def test_by_default_the_embedding_is_the_encoders_own_mean_pooling_with_nothing_random(tiny_encoder_factory, glosses):
    encoder = tiny_encoder_factory()
    model = TripletSemiHard.from_encoder(encoder)
    assert not [layer for layer in model.layers if "projection" in layer.name]
    texts = glosses[0][:5] + [""]
    tokens = encoder.preprocessor(tf.constant(texts))
    features = encoder(tokens)
    sequence = features["sequence_output"].numpy().astype("float64")
    mask = tokens["padding_mask"].numpy().astype("float64")[:, :, None]
    mean = (sequence * mask).sum(axis=1) / mask.sum(axis=1)
    expected = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict(np.array(texts, dtype=object), verbose=0), expected, atol=1e-5)
    # The study's head is one argument away; a hidden layer alone is refused.
    study = TripletSemiHard.from_encoder(tiny_encoder_factory(), "pooled", output_units=64, hidden_units=(64,))
    assert study.output_shape == (None, 64)
    with pytest.raises(ValueError, match="needs output_units"):
        TripletSemiHard.from_encoder(tiny_encoder_factory(), hidden_units=(64,))


def test_steps_per_execution_trains_logs_and_resumes_as_one_step_at_a_time(tiny_encoder_factory, glosses, tmp_path):
    """Several steps per call of the train function: the same weights, mining statistics and
    callbacks (ResumeSampling, added beside BackupAndRestore, stops on the last batch)."""
    keras.utils.set_random_seed(0)
    reference = TripletSemiHard.from_encoder(tiny_encoder_factory(), margin=0.5)
    initial = reference.get_weights()
    results = {}
    for steps_per_execution in (1, 4):  # 4 does not divide the 6 batches of an epoch
        model = TripletSemiHard.from_encoder(tiny_encoder_factory(), margin=0.5)
        model.set_weights(initial)
        model.compile(optimizer=keras.optimizers.Adam(2e-3), steps_per_execution=steps_per_execution)
        ends = []
        history = model.fit(
            class_balanced_batches(*glosses, classes_per_batch=8, samples_per_class=4, seed=2, batches_per_epoch=6),
            epochs=2, verbose=0, callbacks=[
                keras.callbacks.BackupAndRestore(str(tmp_path / f"backup{steps_per_execution}")),
                keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: ends.append(batch)),
            ],
        )
        results[steps_per_execution] = (model.get_weights(), history.history, ends, int(model.optimizer.iterations))
    weights, logs, ends, steps = results[4]
    assert steps == 12 and len(ends) == 4  # one callback per execution (Keras numbers the last 7, not 5)
    for got, expected in zip(weights, results[1][0]):
        np.testing.assert_allclose(got, expected, atol=1e-6)
    for name in ("loss", "active_triplets", "positive_distance", "negative_distance"):
        np.testing.assert_allclose(logs[name], results[1][1][name], rtol=1e-5, err_msg=name)
