"""Two worker processes under MultiWorkerMirroredStrategy (localhost) train the weights one device
trains on the same global batches; a killed worker's cluster resumes to the uninterrupted weights."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_siamese.cluster import local_cluster, run_local_workers

TIMEOUT_SECONDS = 600

# Run once without TF_CONFIG (one device, the reference) and as each worker of a 2-worker cluster.
WORKER_VERSUS_ONE_DEVICE = """
import json, numpy as np, tensorflow as tf
from keras_siamese.cluster import cluster_task, connect
task = cluster_task()
strategy = connect() if task else tf.distribute.get_strategy()
import keras, keras_hub
from keras_siamese.data import class_balanced_batches
from keras_siamese.layers import TextEncoder
from keras_siamese.losses import MultipleNegativesRankingLoss, TripletBatchHardLoss
from keras_siamese.models import TripletSemiHard, pair_model

rng = np.random.default_rng(0)
features = rng.normal(size=(48, 6)).astype("float32")
# Each worker's half of a global batch of 16 holds other classes than the other half,
# so per-worker mining would pick other triplets.
labels = np.concatenate([np.repeat([0, 1], 4), np.repeat([2, 3], 4), np.repeat([0, 2], 4),
                         np.repeat([4, 5], 4), np.repeat([1, 4], 4), np.repeat([6, 7], 4)]).astype("int32")
words = "a dog cat barked at the small large red house tree of in on".split()
tokenizer = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)
text_labels = np.repeat(np.arange(4), 8)
texts = [" ".join(rng.choice(words[3 * label:], size=6)) for label in text_labels]

def feature_model(mini_batch_size):
    x = keras.Input((6,))
    hidden = keras.layers.Dense(16, activation="tanh")(x)
    return TripletSemiHard(inputs=x, outputs=keras.layers.Dense(4)(hidden), mini_batch_size=mini_batch_size)

def text_model(mini_batch_size):
    # No dropout: each worker draws its own masks for its rows, one device one mask for all.
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(words) + 5, num_layers=1, num_heads=2,
                                             hidden_dim=16, intermediate_dim=32, max_sequence_length=32, dropout=0.0)
    return TripletSemiHard.from_encoder(TextEncoder(backbone, tokenizer, sequence_length=16),
                                        output_units=8, mini_batch_size=mini_batch_size)

def global_batches(arrays, batch):
    def slice_for(context):
        size = batch // context.num_input_pipelines
        start = context.input_pipeline_id * size
        dataset = tf.data.Dataset.from_tensor_slices(arrays).batch(batch)
        return dataset.map(lambda *columns: tf.nest.map_structure(lambda column: column[start : start + size], columns))
    if task is None:
        return slice_for(tf.distribute.InputContext())
    return strategy.distribute_datasets_from_function(slice_for)

def train(case, mini_batch_size):
    keras.utils.set_random_seed(1)
    with strategy.scope():
        if case == "mnrl":
            model = pair_model(feature_model(None), mini_batch_size=mini_batch_size)
            loss = MultipleNegativesRankingLoss()
        else:
            model = (text_model if case == "texts" else feature_model)(mini_batch_size)
            loss = TripletBatchHardLoss() if case == "batch_hard" else None
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    if case == "texts":  # two epochs of the batch generator: the second pass is a new epoch
        make = lambda context=None: class_balanced_batches(texts, text_labels, 4, 4, seed=0, batches_per_epoch=2,
                                                          input_context=context)
        data = make() if task is None else model.distributed_batches(make)
    elif case == "mnrl":
        data = global_batches(((features[:24], features[24:]), np.zeros(24, "float32")), 8)
    else:
        data = global_batches((features, labels), 16)
    history = model.fit(data, epochs=2, verbose=0)
    result = {"weights": [w.tolist() for w in model.get_weights()], "loss": history.history["loss"]}
    if case == "semi_hard" and mini_batch_size is None:  # evaluate and predict under the strategy too
        result["evaluate"] = model.evaluate(data, verbose=0, return_dict=True)
        result["predict"] = model.predict(features, batch_size=16, verbose=0).tolist()
    if case == "texts" and mini_batch_size is None:
        result["predict"] = model.predict(texts[:8], verbose=0).tolist()
    return result

results = {}
for case, mini_batch_size in [(case, size) for case in ("semi_hard", "batch_hard", "mnrl") for size in (None, 3)] + [
    ("texts", None)
]:
    results[f"{case}/{mini_batch_size}"] = train(case, mini_batch_size)
print("RESULTS " + json.dumps(results))
"""


def _results(stdout):
    (line,) = [line for line in stdout.splitlines() if line.startswith("RESULTS ")]
    return json.loads(line.removeprefix("RESULTS "))


def _run_together(environments, script):
    """Runs `script` once per environment, all at once; returns their outputs (stops on a timeout)."""
    processes = [
        subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for extra in environments
    ]
    try:
        outputs = [process.communicate(timeout=TIMEOUT_SECONDS) for process in processes]
    finally:
        for process in processes:
            process.kill()
    failed = [stderr[-3000:] for process, (_, stderr) in zip(processes, outputs) if process.returncode]
    assert not failed, "\n\n".join(failed)
    return [_results(stdout) for stdout, _ in outputs]


@pytest.fixture(scope="module")
def two_workers_and_one_device():
    configs = local_cluster(2)
    one_device, *workers = _run_together([{}] + [{"TF_CONFIG": config} for config in configs], WORKER_VERSUS_ONE_DEVICE)
    return one_device, workers


def _largest_difference(weights, others):
    return max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(weights, others))


@pytest.mark.slow
@pytest.mark.parametrize(
    "case, mini_batch_size",
    [(case, size) for case in ("semi_hard", "batch_hard", "mnrl") for size in (None, 3)] + [("texts", None)],
)
def test_two_workers_train_the_weights_of_one_device_on_the_same_global_batches(
    two_workers_and_one_device, case, mini_batch_size
):
    one_device, workers = two_workers_and_one_device
    reference = one_device[f"{case}/{mini_batch_size}"]
    for worker in workers:
        result = worker[f"{case}/{mini_batch_size}"]
        assert _largest_difference(result["weights"], reference["weights"]) < 1e-5
        # The reported loss is the global batch's, as on one device.
        assert np.allclose(result["loss"], reference["loss"], atol=1e-5), (result["loss"], reference["loss"])


@pytest.mark.slow
@pytest.mark.parametrize("case", ["semi_hard", "texts"])
def test_two_workers_evaluate_and_predict_as_one_device(two_workers_and_one_device, case):
    one_device, workers = two_workers_and_one_device
    reference = one_device[f"{case}/None"]
    for worker in workers:
        result = worker[f"{case}/None"]
        # every row, in order; each worker pads its share to its own length bucket, and float32 sums over
        # other paddings differ by up to 3.3e-5 on an AVX2 CPU (1e-5 held on AVX-512)
        np.testing.assert_allclose(result["predict"], reference["predict"], atol=5e-5)
        if case == "semi_hard":
            assert result["evaluate"].keys() == reference["evaluate"].keys()
            for name, value in reference["evaluate"].items():
                assert abs(result["evaluate"][name] - value) < 1e-5, (name, result["evaluate"], reference["evaluate"])


# A 2-worker training with BackupAndRestore every 2 steps; argv: backup dir, weights file, [step to die at].
RESUMABLE_TRAINING = """
import os, signal, sys, numpy as np, tensorflow as tf
from keras_siamese.cluster import cluster_task, connect, worker_backup_dir
task = cluster_task()
strategy = connect()
import keras, keras_hub
from keras_siamese.data import class_balanced_batches
from keras_siamese.layers import TextEncoder
from keras_siamese.models import TripletSemiHard

backup_dir, weights_file = sys.argv[1:3]
die_at = int(sys.argv[3]) if len(sys.argv) > 3 else None
words = "a dog cat barked at the small large red house tree of in on".split()
tokenizer = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)
rng = np.random.default_rng(0)
labels = np.repeat(np.arange(4), 8)
texts = [" ".join(rng.choice(words[3 * label:], size=6)) for label in labels]
keras.utils.set_random_seed(1)
with strategy.scope():
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(words) + 5, num_layers=1, num_heads=2, hidden_dim=16,
                                             intermediate_dim=32, max_sequence_length=32, dropout=0.1)
    model = TripletSemiHard.from_encoder(TextEncoder(backbone, tokenizer, sequence_length=16), output_units=8)
    model.compile(optimizer="adam")
batches = model.distributed_batches(
    lambda context: class_balanced_batches(texts, labels, 4, 4, seed=0, batches_per_epoch=4, input_context=context))

class DieAt(keras.callbacks.Callback):  # worker 1 is killed in the middle of the second epoch
    def on_train_batch_end(self, batch, logs=None):
        if die_at is not None and task.task_index == 1 and int(self.model.optimizer.iterations.numpy()) == die_at:
            os.kill(os.getpid(), signal.SIGKILL)

with worker_backup_dir(backup_dir, task) as own_backup_dir:
    model.fit(batches, epochs=3, verbose=0,
              callbacks=[keras.callbacks.BackupAndRestore(own_backup_dir, save_freq=2), DieAt()])
if task.is_chief:
    np.savez(weights_file, *model.get_weights())
"""


@pytest.mark.slow
def test_a_killed_worker_is_reported_and_the_rerun_resumes_to_the_uninterrupted_weights(tmp_path, capfd):
    script = tmp_path / "train.py"
    script.write_text(RESUMABLE_TRAINING)

    def run(name, *extra):
        command = [sys.executable, str(script), str(tmp_path / name / "backup"), str(tmp_path / f"{name}.npz"), *extra]
        return run_local_workers(command, 2, rerun_hint=" Rerun to resume.")

    assert run("uninterrupted") == 0
    assert run("interrupted", "7") == 1
    report = capfd.readouterr().err.strip().splitlines()[-1]
    assert report.startswith("error: worker 1 (pid ") and "was killed by SIGKILL" in report, report
    assert (tmp_path / "interrupted" / "backup").is_dir() and not (tmp_path / "interrupted.npz").exists()
    assert run("interrupted") == 0
    assert not (tmp_path / "interrupted" / "backup").exists()  # removed when the training is done
    uninterrupted, resumed = np.load(tmp_path / "uninterrupted.npz"), np.load(tmp_path / "interrupted.npz")
    assert len(uninterrupted.files) == len(resumed.files)
    for name in uninterrupted.files:
        np.testing.assert_array_equal(resumed[name], uninterrupted[name])
