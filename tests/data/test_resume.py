"""kill -9 anywhere, rerun with BackupAndRestore + ResumeSampling: the uninterrupted run's weights, bit for bit."""

import os
import random
import subprocess
import sys

import numpy as np
import pytest

from keras_siamese.data import ResumeSampling, class_balanced_batches

# A small strings-in model with dropout, trained on class-balanced batches; prints each
# finished step so the test can kill it at a chosen moment.
TRAIN = """
import sys, numpy as np, keras
from keras_siamese.data import ResumeSampling, class_balanced_batches
from keras_siamese.models import TripletSemiHard

backup_dir, weights_path, save_freq = sys.argv[1], sys.argv[2], sys.argv[3]
save_freq = save_freq if save_freq == "epoch" else int(save_freq)
keras.utils.set_random_seed(0)
texts = [f"text {i} of class {i % 6}" for i in range(120)]
labels = [i % 6 for i in range(120)]
text = keras.Input(shape=(), dtype="string")
hidden = keras.layers.Embedding(512, 16)(keras.layers.Hashing(512)(text))
hidden = keras.layers.Dropout(0.2)(keras.layers.Dense(16, activation="relu")(hidden))
model = TripletSemiHard(inputs=text, outputs=keras.layers.Dense(8)(hidden))
model.compile(optimizer=keras.optimizers.Adam(0.01))
batches = class_balanced_batches(texts, labels, classes_per_batch=3, samples_per_class=4, seed=1, batches_per_epoch=6)

class PrintSteps(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        print("step", int(self.model.optimizer.iterations), flush=True)

model.fit(batches, epochs=4, verbose=0, callbacks=[
    keras.callbacks.BackupAndRestore(backup_dir, save_freq=save_freq), ResumeSampling(batches), PrintSteps()])
np.save(weights_path, np.concatenate([w.ravel() for w in model.get_weights()]))
print("steps", int(model.optimizer.iterations), flush=True)
"""
TOTAL_STEPS = 24


def _train(tmp_path, name, save_freq, kill_after_step=None, delay=0.0):
    """Runs TRAIN; with `kill_after_step`, kill -9s it `delay` s after that step printed."""
    command = [sys.executable, "-c", TRAIN, str(tmp_path / "backup"), str(tmp_path / f"{name}.npy"), save_freq]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if kill_after_step is None:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        return np.load(tmp_path / f"{name}.npy"), int(out.split("steps")[-1])
    for line in process.stdout:
        if line.strip() == f"step {kill_after_step}":
            break
    if delay:
        import time

        time.sleep(delay)
    process.kill()
    process.communicate()
    return None


@pytest.mark.slow
@pytest.mark.parametrize("save_freq", ["epoch", "3"], ids=["per_epoch", "every_3_steps"])
def test_killed_and_rerun_training_ends_with_the_uninterrupted_weights(tmp_path_factory, save_freq):
    reference, steps = _train(tmp_path_factory.mktemp("reference"), "reference", save_freq)
    assert steps == TOTAL_STEPS
    rng = random.Random(save_freq)
    for trial in range(3):
        tmp_path = tmp_path_factory.mktemp(f"killed{trial}")
        for _ in range(2):  # killed twice at random moments (mid-save included): 12 kills in all
            _train(tmp_path, "killed", save_freq, kill_after_step=rng.randrange(1, TOTAL_STEPS), delay=rng.random() / 20)
        weights, steps = _train(tmp_path, "resumed", save_freq)
        assert steps == TOTAL_STEPS
        assert np.array_equal(weights, reference), f"trial {trial}: largest difference {np.abs(weights - reference).max()}"


def test_a_pass_started_mid_epoch_continues_into_the_next_epoch():
    texts, labels = [f"t{i}" for i in range(24)], [i % 3 for i in range(24)]
    batches = class_balanced_batches(texts, labels, 3, 2, seed=0, batches_per_epoch=4)
    epochs = [[b.numpy().tolist() for b, _ in batches] for _ in range(3)]
    batches.epoch_position.seek(6)  # epoch 1, batch 2
    resumed = [b.numpy().tolist() for b, _ in batches]
    assert resumed == epochs[1][2:] + epochs[2][:2]
    assert len(list(batches)) == 4 and batches.cardinality().numpy() == 4


def test_resume_sampling_needs_a_batch_generator_dataset():
    import tensorflow as tf

    with pytest.raises(ValueError, match="ResumeSampling takes a dataset made by keras_siamese.data's batch generators"):
        ResumeSampling(tf.data.Dataset.range(3))
