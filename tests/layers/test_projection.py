import keras
import numpy as np

from keras_siamese.layers import Projection


def test_is_dense_relu_then_dense():
    layer = Projection(output_units=3, hidden_units=(5,))
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    out = layer(x).numpy()
    (w1, b1), (w2, b2) = [d.get_weights() for d in (layer.hidden_layers[0], layer.output_layer)]
    expected = []
    for row in x:
        hidden = [max(0.0, sum(row[i] * w1[i, j] for i in range(6)) + b1[j]) for j in range(5)]
        expected.append([sum(hidden[j] * w2[j, k] for j in range(5)) + b2[k] for k in range(3)])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_config_round_trip_gives_same_architecture():
    layer = Projection(output_units=8, hidden_units=(16, 12), activation="gelu", dropout=0.1)
    clone = Projection.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone(np.zeros((2, 5), "float32")).shape == (2, 8)
    assert len(clone.trainable_weights) == 6


def test_saved_in_a_model(tmp_path):
    inputs = keras.Input((6,))
    model = keras.Model(inputs, Projection(4, (8,))(inputs))
    x = np.random.default_rng(1).normal(size=(3, 6)).astype("float32")
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "m.keras")(x), model(x))
