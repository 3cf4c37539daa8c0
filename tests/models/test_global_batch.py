"""Under tf.distribute every replica's loss mines the global batch: the weights equal one device's."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_siamese.models.global_batch import gather_global_batch, replica_share

# Runs in a fresh process: logical devices must be set before TensorFlow starts.
MIRRORED_VERSUS_ONE_DEVICE = """
import json, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_siamese.losses import MultipleNegativesRankingLoss, TripletBatchHardLoss
from keras_siamese.models import TripletSemiHard, pair_model

rng = np.random.default_rng(0)
features = rng.normal(size=(48, 6)).astype("float32")
# Batches of 16; each replica's half of a batch holds other classes than the other half,
# so per-replica mining would pick other triplets.
labels = np.concatenate([np.repeat([0, 1], 4), np.repeat([2, 3], 4), np.repeat([0, 2], 4),
                         np.repeat([4, 5], 4), np.repeat([1, 4], 4), np.repeat([6, 7], 4)])

def embedding_model(mini_batch_size, policy="float32"):
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(1)
    x = keras.Input((6,))
    hidden = keras.layers.Dense(16, activation="tanh")(x)
    # float32 output, as keras_siamese's Pooling -> L2Normalize give under a mixed policy
    output = keras.layers.Dense(4, dtype="float32")(hidden)
    # margin 1.0: on these random features no mined negative sits within bfloat16's rounding of a tie
    return TripletSemiHard(inputs=x, outputs=output, mini_batch_size=mini_batch_size, margin=1.0)

def train(strategy, case, mini_batch_size, policy="float32", epochs=2):
    with strategy.scope():
        if case == "mnrl":
            model = pair_model(embedding_model(None), mini_batch_size=mini_batch_size)
            data = ((features[:24], features[24:]), np.zeros(24, "float32"))
            loss = MultipleNegativesRankingLoss()
        else:
            model = embedding_model(mini_batch_size, policy)
            data = (features, labels)
            loss = TripletBatchHardLoss() if case == "batch_hard" else None
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    batch = 8 if case == "mnrl" else 16
    history = model.fit(tf.data.Dataset.from_tensor_slices(data).batch(batch), epochs=epochs, verbose=0)
    return model.get_weights(), history.history["loss"]

one = tf.distribute.OneDeviceStrategy("/cpu:0")
two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
results = {}
for case in ("semi_hard", "batch_hard", "mnrl"):
    reference, reference_loss = train(one, case, None)
    initial = (pair_model(embedding_model(None)) if case == "mnrl" else embedding_model(None)).get_weights()
    for mini_batch_size in (None, 3):
        weights, loss = train(two, case, mini_batch_size)
        results[f"{case}/{mini_batch_size}"] = {
            "moved": max(float(np.abs(a - b).max()) for a, b in zip(reference, initial)),
            "weights": max(float(np.abs(a - b).max()) for a, b in zip(reference, weights)),
            "loss": max(abs(a - b) for a, b in zip(reference_loss, loss)),
        }
for policy in ("mixed_bfloat16", "mixed_float16"):  # gradient caching and the gather in mixed precision
    # One epoch (3 steps): later, a rounding that flips one mined negative on these random
    # features moves the weights apart by more than rounding itself would.
    reference, reference_loss = train(one, "semi_hard", None, policy, epochs=1)
    weights, loss = train(two, "semi_hard", 3, policy, epochs=1)
    results[policy] = {
        "moved": max(float(np.abs(a - b).max()) for a, b in zip(reference, embedding_model(None).get_weights())),
        "weights": max(float(np.abs(a - b).max()) for a, b in zip(reference, weights)),
        "loss": max(abs(a - b) for a, b in zip(reference_loss, loss)),
    }
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def mirrored_results():
    finished = subprocess.run(
        [sys.executable, "-c", MIRRORED_VERSUS_ONE_DEVICE], capture_output=True, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mini_batch_size", [None, 3], ids=["uncached", "cached"])
@pytest.mark.parametrize("case", ["semi_hard", "batch_hard", "mnrl"])
def test_two_replicas_train_the_weights_of_one_device_on_the_same_global_batches(
    mirrored_results, case, mini_batch_size
):
    result = mirrored_results[f"{case}/{mini_batch_size}"]
    assert result["moved"] > 1e-3
    assert result["weights"] < 1e-5
    assert result["loss"] < 1e-5  # the reported loss is the global batch's, not N times it


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_in_mixed_precision_two_cached_replicas_train_the_weights_of_one_device(mirrored_results, policy):
    result = mirrored_results[policy]
    assert result["moved"] > 1e-3
    # The hidden layer's gradients are bfloat16/float16 matmuls over 16 rows on one device and
    # 3-row chunks on each replica, then added in float32: the roundings (2**-9 of a value in
    # bfloat16) differ, so the weights agree to about 1 % of their move, not float32's 1e-5.
    assert result["weights"] < 0.02 * result["moved"], result
    assert result["loss"] < 0.01, result


def test_without_a_strategy_values_pass_through_and_the_share_is_the_whole():
    labels, embeddings = np.arange(4), np.ones((4, 2), "float32")
    gathered_labels, gathered_embeddings, nothing = gather_global_batch(labels, embeddings, None)
    assert gathered_labels is labels and gathered_embeddings is embeddings and nothing is None
    assert float(replica_share(np.float32(3.0))) == 3.0
