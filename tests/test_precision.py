"""Mixed precision: bfloat16 and float16 training track float32; embeddings and losses stay float32."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese import precision
from keras_siamese.data import class_balanced_batches
from keras_siamese.layers import L2Normalize, Pooling, Projection
from keras_siamese.models import TripletSemiHard, load_model
from keras_siamese.precision import computing_in, training_precision

STEPS = 12


def build(tiny_encoder_factory, policy, weights=None, **model_options):
    with training_precision(policy):
        model = TripletSemiHard.from_encoder(tiny_encoder_factory(), **model_options)
        if weights is not None:
            model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.Adam(2e-3))
    return model


def encoder_of(model):
    return next(layer for layer in model.layers if hasattr(layer, "backbone"))


def step_losses(model, glosses, epochs=1):
    """The loss of every step (fit logs running means: differences of the sums give each step's)."""
    means = []
    logger = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: means.append(logs["loss"]))
    batches = class_balanced_batches(*glosses, classes_per_batch=8, samples_per_class=4, seed=1, batches_per_epoch=STEPS)
    model.fit(batches, epochs=epochs, verbose=0, callbacks=[logger])
    means = np.asarray(means).reshape(epochs, STEPS)
    sums = means * np.arange(1, STEPS + 1)
    return np.diff(sums, axis=1, prepend=0).reshape(-1)


@pytest.fixture(scope="module")
def trained(tiny_encoder_factory, glosses):
    """{precision: (model, per-step losses)} of the same initial weights trained on the same batches."""
    reference = build(tiny_encoder_factory, "float32")
    initial = reference.get_weights()
    runs = {"float32": (reference, step_losses(reference, glosses))}
    for policy in ("bfloat16", "float16"):
        model = build(tiny_encoder_factory, policy, initial)
        runs[policy] = (model, step_losses(model, glosses))
    return runs


def test_pooling_projection_and_normalisation_return_float32_and_keep_float32_inputs():
    features = {
        "sequence_output": tf.random.normal([3, 5, 8], dtype=tf.bfloat16),
        "pooled_output": tf.random.normal([3, 8], dtype=tf.bfloat16),
        "padding_mask": tf.constant([[True] * 5, [True] * 2 + [False] * 3, [True] * 4 + [False]]),
    }
    vectors = tf.constant([[3.0, 4.0], [1e-3, 1.0 + 2**-12]])  # not representable in bfloat16
    with training_precision("bfloat16"):
        for mode in ("pooled", "cls", "mean", "max", "mean_sqrt_len"):
            assert Pooling(mode)(features).dtype == tf.float32, mode
        assert Projection(4, (6,))(tf.ones([2, 8])).dtype == tf.float32
        normalized = L2Normalize()(vectors)
        symbolic = L2Normalize()(Pooling("mean")({
            "sequence_output": keras.Input((5, 8)), "pooled_output": keras.Input((8,)),
            "padding_mask": keras.Input((5,), dtype="bool"),
        }))
    assert normalized.dtype == tf.float32 and symbolic.dtype == "float32"
    by_hand = vectors.numpy() / np.linalg.norm(vectors.numpy(), axis=1, keepdims=True)
    np.testing.assert_allclose(normalized.numpy(), by_hand, rtol=1e-6)  # float32 in, float32 maths


def test_float16_trains_with_loss_scaling_and_bfloat16_without(trained):
    assert isinstance(trained["float16"][0].optimizer, keras.optimizers.LossScaleOptimizer)
    assert not isinstance(trained["bfloat16"][0].optimizer, keras.optimizers.LossScaleOptimizer)
    for policy in ("bfloat16", "float16"):
        model = trained[policy][0]
        assert encoder_of(model).compute_dtype == policy and model.output.dtype == "float32"
        assert all(weight.dtype == "float32" for weight in model.trainable_weights)


@pytest.mark.parametrize("policy", ["bfloat16", "float16"])
def test_mixed_precision_losses_track_float32_on_the_same_batches(trained, policy):
    reference, losses = trained["float32"][1], trained[policy][1]
    # Step 1 (same weights, same batch) differs only by rounding activations to 8 (bfloat16) or
    # 11 (float16) significant bits: bfloat16's unit roundoff is 2**-9 = 0.2 %, a few roundings
    # deep through two layers stay within 2 %.
    assert losses[0] == pytest.approx(reference[0], rel=0.02)
    # Later the weights drift apart (mining picks discrete triplets, so a rounding can change which
    # are active). Measured here: per-step losses 0.005 from float32's on average (0.019 at most;
    # step 1 agrees to 3e-5 in bfloat16, 2e-4 in float16), while the loss itself moves from 0.49
    # to 0.47. Six times that average is a real failure.
    assert np.abs(losses - reference).mean() < 0.03
    assert np.isfinite(losses).all() and losses[-4:].mean() < losses[:4].mean()


def test_bfloat16_embeddings_stay_within_cosine_0_99_of_float32_for_the_same_weights(
    tiny_encoder_factory, trained, glosses
):
    bfloat16 = trained["bfloat16"][0]
    float32 = build(tiny_encoder_factory, "float32", bfloat16.get_weights())
    texts = glosses[0][:200]
    cosines = np.sum(bfloat16.predict(texts, verbose=0) * float32.predict(texts, verbose=0), axis=1)
    assert cosines.min() >= 0.99
    tokens = float32.preprocessor(tf.constant(texts[:50]))
    with computing_in(float32, "bfloat16"):  # the export's switch computes what the bfloat16 model does
        np.testing.assert_array_equal(float32(tokens).numpy(), bfloat16(tokens).numpy())
    assert encoder_of(float32).compute_dtype == "float32"  # and the policies come back


@pytest.mark.parametrize("policy", ["bfloat16", "float16"])
def test_a_saved_mixed_precision_model_reloads_and_resumes_exactly(tiny_encoder_factory, glosses, policy, tmp_path):
    model = build(tiny_encoder_factory, policy, mini_batch_size=8)

    def batches():
        return class_balanced_batches(*glosses, classes_per_batch=8, samples_per_class=4, seed=3, batches_per_epoch=4)

    uninterrupted = batches()
    model.fit(uninterrupted, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    reloaded = load_model(tmp_path / "model.keras")
    assert encoder_of(reloaded).compute_dtype == policy and reloaded.mini_batch_size == 8
    if policy == "float16":
        assert float(reloaded.optimizer.dynamic_scale) == float(model.optimizer.dynamic_scale)
    np.testing.assert_array_equal(reloaded.predict(glosses[0][:40], verbose=0), model.predict(glosses[0][:40], verbose=0))
    # Epoch 2 from the file equals epoch 2 of the model that never stopped (gradient caching on).
    resumed = batches()
    resumed.epoch_position.seek(4)
    reloaded.fit(resumed, epochs=1, verbose=0)
    model.fit(uninterrupted, epochs=1, verbose=0)
    for expected, got in zip(model.get_weights(), reloaded.get_weights()):
        np.testing.assert_array_equal(got, expected)


def test_unknown_precisions_are_value_errors_and_float16_without_fast_float16_warns(monkeypatch):
    with pytest.raises(ValueError, match=r"precision must be one of \('float32', 'bfloat16', 'float16'\), got 'int8'"):
        with training_precision("int8"):
            pass
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU has fast float16")
    monkeypatch.setattr(precision, "_cpu_has", lambda flags: False)  # a CPU without avx512_fp16 / amx_fp16
    with pytest.warns(UserWarning, match="precision float16 on a machine without a GPU .* slower than float32"):
        with training_precision("float16"):
            assert keras.config.dtype_policy().name == "mixed_float16"
    assert keras.config.dtype_policy().name == "float32"


def test_matmul_precision_sets_onednn_fpmath_mode_and_warns_without_amx(monkeypatch):
    monkeypatch.delenv("TF_SET_ONEDNN_FPMATH_MODE", raising=False)
    assert precision.matmul_precision() == "float32"
    monkeypatch.setattr(precision, "_cpu_has", lambda flags: True)  # a CPU with AMX
    precision.set_matmul_precision("bf16")
    assert precision.matmul_precision() == "bf16"
    import os

    assert os.environ["TF_SET_ONEDNN_FPMATH_MODE"] == "BF16"  # the exact value TensorFlow reads
    precision.set_matmul_precision("float32")
    assert "TF_SET_ONEDNN_FPMATH_MODE" not in os.environ
    monkeypatch.setattr(precision, "_cpu_has", lambda flags: False)
    with pytest.warns(UserWarning, match="without AMX"):
        precision.set_matmul_precision("bf16")
    with pytest.raises(ValueError, match=r"matmul precision must be one of \('float32', 'bf16'\), got 'BF16'"):
        precision.set_matmul_precision("BF16")
