"""The fused graph (keras_siamese.layers.fusion) against Keras' own: values, gradients, config,
the graph it emits, what it leaves alone, the off switch and the fallback."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.layers import fusion
from keras_siamese.layers.fusion import fuse, is_fused, set_fused_graph


@pytest.fixture(autouse=True)
def fusion_on():
    set_fused_graph(True)
    yield
    set_fused_graph(True)


def _layers():
    """(layer, input) pairs for every kind and form the fused calls cover."""
    rng = np.random.default_rng(0)
    x3 = rng.standard_normal((3, 5, 8)).astype("float32")
    x4 = rng.standard_normal((3, 5, 2, 4)).astype("float32")
    return [
        (keras.layers.Dense(6, activation=keras.activations.gelu), x3),
        (keras.layers.Dense(6, activation="tanh", use_bias=False), x3),
        (keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 2, 4), bias_axes="de"), x3),
        (keras.layers.EinsumDense("abcd,cde->abe", output_shape=(None, 8), bias_axes="e"), x4),
        (keras.layers.LayerNormalization(epsilon=1e-12), x3 * 3 + 1),
        (keras.layers.LayerNormalization(center=False, scale=False), x3),
    ]


def _randomised(layer, x):
    layer.build(x.shape)
    for variable in layer.weights:  # non-trivial gamma/beta/bias
        variable.assign(np.random.default_rng(1).standard_normal(variable.shape).astype("float32"))
    return layer


def _value_and_gradients(layer, x):
    x = tf.constant(x)

    @tf.function
    def run():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.sin(y))
        return y, tape.gradient(loss, [x] + layer.trainable_weights)

    return run()


@pytest.mark.parametrize("index", range(len(_layers())))
def test_fused_forms_equal_keras_in_values_and_gradients(index):
    layer, x = _layers()[index]
    layer = _randomised(layer, x)
    set_fused_graph(False)
    want, want_gradients = _value_and_gradients(layer, x)  # oracle: Keras' own call
    set_fused_graph(True)
    fuse(layer)
    assert is_fused(layer)
    got, got_gradients = _value_and_gradients(layer, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for got_gradient, want_gradient in zip(got_gradients, want_gradients):
        np.testing.assert_allclose(got_gradient, want_gradient, rtol=1e-4, atol=1e-5)


def _graph(layer, x):
    return tf.function(lambda x: layer(x)).get_concrete_function(tf.TensorSpec([None] + list(x.shape[1:]))).graph


def _op_types(layer, x):
    return {node.type for node in _graph(layer, x).get_operations()}


def _biased_matmuls(layer, x):
    """How many BiasAdds take a MatMul's output directly (the remapper's `_FusedMatMul` pattern)."""
    return sum(op.type == "BiasAdd" and op.inputs[0].op.type == "MatMul" for op in _graph(layer, x).get_operations())


def test_the_graph_has_the_fusable_patterns():
    dense, x = _layers()[0]
    norm, _ = _layers()[4]
    for layer in (dense, norm):
        _randomised(layer, x)
        fuse(layer)
    assert _biased_matmuls(dense, x) == 1
    assert "FusedBatchNormV3" in _op_types(norm, x)
    set_fused_graph(False)
    assert "FusedBatchNormV3" not in _op_types(norm, x)
    assert _biased_matmuls(dense, x) == 0


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
def test_layers_the_fused_forms_do_not_cover_keep_keras_call():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4)).astype("float32")
    uncovered = [
        (keras.layers.LayerNormalization(rms_scaling=True), x),
        (keras.layers.LayerNormalization(axis=(1, 2)), x),
        (keras.layers.EinsumDense("abc,dc->abd", output_shape=(None, 5), bias_axes="d"), x),  # transposed kernel
        (keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 2, 3), bias_axes="e"), x),  # bias on one of two axes
        (keras.layers.Dense(5), x[:, 0]),  # rank 2: Keras' call is already a 2-D MatMul
    ]
    for layer, inputs in uncovered:
        layer = _randomised(layer, inputs)
        set_fused_graph(False)
        want = layer(inputs)
        set_fused_graph(True)
        fuse(layer)
        np.testing.assert_allclose(layer(inputs), want, rtol=1e-6)
        assert "FusedBatchNormV3" not in _op_types(layer, inputs)


def test_lora_and_quantised_layers_keep_keras_call():
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype("float32")
    dense = _randomised(keras.layers.Dense(5), x)
    dense.enable_lora(2)
    fuse(dense)
    assert _biased_matmuls(dense, x) == 0


def test_config_and_weights_do_not_change(tmp_path):
    inputs = keras.Input((None, 8))
    outputs = keras.layers.LayerNormalization()(keras.layers.Dense(4, activation="gelu")(inputs))
    model = keras.Model(inputs, outputs)
    config = model.get_config()
    fuse(model)
    assert model.get_config() == config
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert not any(is_fused(layer) for layer in reloaded.layers)  # Keras' model, loaded as Keras made it
    x = np.random.default_rng(0).standard_normal((2, 3, 8)).astype("float32")
    np.testing.assert_allclose(model(x), reloaded(x), rtol=1e-5, atol=1e-6)


def test_a_model_built_beside_a_fused_one_is_untouched(tiny_encoder_factory):
    encoder = tiny_encoder_factory()
    assert any(is_fused(layer) for layer in tf.train.TrackableView(encoder.backbone).descendants()
               if isinstance(layer, keras.layers.Layer))
    users = keras.Sequential([keras.Input((None, 8)), keras.layers.Dense(4), keras.layers.LayerNormalization()])
    assert not any(is_fused(layer) for layer in users.layers)
    x = np.zeros((2, 3, 8), "float32")
    assert "FusedBatchNormV3" not in _op_types(users, x) and _biased_matmuls(users, x) == 0


def test_encoder_embeddings_fused_equal_stock(tiny_encoder_factory, glosses):
    from keras_siamese.models import TripletSemiHard

    model = TripletSemiHard.from_encoder(tiny_encoder_factory())
    texts = glosses[0][:40] + ["", "x " * 100]
    set_fused_graph(False)
    want = model.predict(texts)
    set_fused_graph(True)
    got = TripletSemiHard.from_config(model.get_config())  # a fresh model: its own traced functions
    got.set_weights(model.get_weights())
    cosines = np.sum(got.predict(texts) * want, axis=1)
    assert cosines.min() >= 0.99999


def test_fallback_when_keras_renamed_what_fusion_reads(monkeypatch):
    monkeypatch.setitem(fusion._REQUIRED_ATTRIBUTES, keras.layers.Dense, ("kernel", "renamed_attribute"))
    monkeypatch.setattr(fusion, "_warned", [])
    x = np.ones((2, 3, 4), "float32")
    layers = [_randomised(keras.layers.Dense(5), x), _randomised(keras.layers.Dense(5), x)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for layer in layers:
            fuse(layer)
    messages = [str(warning.message) for warning in caught if "fusion" in str(warning.message)]
    assert len(messages) == 1 and "renamed_attribute" in messages[0]
    assert not any(is_fused(layer) for layer in layers)


def test_the_switch_takes_booleans_only():
    with pytest.raises(TypeError, match="True or False"):
        set_fused_graph("off")


def test_training_fused_follows_the_stock_graph(tiny_encoder_factory, glosses):
    from keras_siamese.models import TripletSemiHard

    texts, labels = glosses
    rows = np.random.default_rng(0).permutation(len(texts))[: 6 * 48].reshape(6, 48)
    batches = tf.data.Dataset.from_tensor_slices(
        (np.asarray(texts, object)[rows].astype(bytes), np.asarray(labels)[rows].astype("int32")))

    def losses(fused, weights=None):
        set_fused_graph(fused)
        model = TripletSemiHard.from_encoder(tiny_encoder_factory())
        if weights is not None:
            model.set_weights(weights)
        weights = model.get_weights()
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        history = model.fit(batches, epochs=1, verbose=0, callbacks=[_StepLosses()])
        return history.model.step_losses, weights

    want, weights = losses(False)  # oracle: Keras' own graph
    got, _ = losses(True, weights)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    assert want[0] != want[-1]  # it trained


class _StepLosses(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.model.step_losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.model.step_losses.append(float(logs["loss"]))


def test_a_deep_copy_computes_with_its_own_weights():
    import copy

    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype("float32")
    dense = fuse(_randomised(keras.layers.Dense(5), x))
    twin = copy.deepcopy(dense)  # Keras copies a layer without its instance call: Keras' own graph
    twin.kernel.assign(np.zeros((4, 5), "float32"))
    np.testing.assert_allclose(twin(x), np.broadcast_to(twin.bias.numpy(), (2, 3, 5)), atol=1e-6)
    assert np.abs(dense(x) - twin(x)).max() > 0.1


def _attention_inputs():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 7, 12)).astype("float32")
    keys = np.ones((3, 7), bool)
    keys[0, 4:], keys[1, 1:] = False, False  # padded texts: each query sees only real keys
    return x, np.broadcast_to(keys[:, None, :], (3, 7, 7))


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_fused_attention_equals_keras_in_values_and_gradients(dropout):
    x, mask = _attention_inputs()
    layer = keras.layers.MultiHeadAttention(num_heads=3, key_dim=5, dropout=dropout)  # scale 1/sqrt(5): inexact
    layer(x, x, attention_mask=mask)
    for variable in layer.weights:  # biases too
        variable.assign(np.random.default_rng(1).standard_normal(variable.shape).astype("float32") / 2)

    @tf.function
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, x, attention_mask=mask)  # inference: dropout is off
            loss = tf.reduce_sum(tf.sin(y))
        return y, tape.gradient(loss, [x] + layer.trainable_weights)

    set_fused_graph(False)
    want, want_gradients = run(tf.constant(x))  # oracle: Keras' own attention
    set_fused_graph(True)
    fuse(layer)
    assert is_fused(layer)
    got, got_gradients = tf.function(run.python_function)(tf.constant(x))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for got_gradient, want_gradient in zip(got_gradients, want_gradients):
        np.testing.assert_allclose(got_gradient, want_gradient, rtol=1e-4, atol=1e-5)


def test_fused_attention_is_one_masked_scaled_batch_product_pattern():
    x, mask = _attention_inputs()
    layer = keras.layers.MultiHeadAttention(num_heads=3, key_dim=4, dropout=0.1)
    layer(x, x, attention_mask=mask)
    fuse(layer)

    def op_types(training):
        function = tf.function(lambda x, m: layer(x, x, attention_mask=m, training=training))
        graph = function.get_concrete_function(tf.TensorSpec([None, None, 12]),
                                               tf.TensorSpec([None, None, None], tf.bool)).graph
        return [op.type for op in graph.get_operations()], graph

    types, graph = op_types(False)
    # scores = BatchMatMulV2 -> Mul (scale) -> AddV2 (mask bias): the remapper's _FusedBatchMatMulV2
    scaled = [op for op in graph.get_operations() if op.type == "Mul" and op.inputs[0].op.type == "BatchMatMulV2"]
    assert len(scaled) == 1 and {consumer.type for consumer in scaled[0].outputs[0].consumers()} == {"AddV2"}
    assert types.count("BatchMatMulV2") == 2
    assert not _selects_on_attention(graph)  # Keras' masking selects on the scores and probabilities
    _, training_graph = op_types(True)  # dropout on: Keras' own attention
    assert _selects_on_attention(training_graph)


def _selects_on_attention(graph):
    """SelectV2 ops fed (directly or through a transpose) by a batch product or a softmax."""
    feeds = {"BatchMatMulV2", "Softmax"}
    return [op for op in graph.get_operations() if op.type == "SelectV2" and any(
        tensor.op.type in feeds or (tensor.op.type == "Transpose" and tensor.op.inputs[0].op.type in feeds)
        for tensor in op.inputs)]
