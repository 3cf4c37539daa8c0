"""The Siamese ALBERT study's projection head."""

import keras

from keras_siamese.checks import check_integer, is_integer, is_number


@keras.saving.register_keras_serializable(package="keras_siamese")
class Projection(keras.layers.Layer):
    """Dense(units, activation) stack ending in a linear Dense(output_units).

    The study's head is `Projection(hidden_units=(64,), output_units=64)`:
    Dense(64, relu) then Dense(64). Follow it with `L2Normalize`. The Dense
    layers compute in the layer's dtype policy; the output is float32 (so
    under mixed precision the embedding is normalised from float32 values).

    Args:
        output_units: size of the embedding.
        hidden_units: sizes of the hidden Dense layers, in order.
        activation: activation of the hidden layers.
        dropout: dropout rate applied after each hidden layer.

    Example:
    >>> Projection(output_units=64, hidden_units=(64,))(tf.ones([2, 128])).shape
    TensorShape([2, 64])
    """

    def __init__(
        self,
        output_units=64,
        hidden_units=(64,),
        activation="relu",
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_integer(output_units, "output_units")
        iterable = hasattr(hidden_units, "__iter__") and not isinstance(hidden_units, (str, bytes))
        hidden = tuple(hidden_units) if iterable else None
        if hidden is None or not all(is_integer(units) and units >= 1 for units in hidden):
            raise ValueError(
                f"hidden_units must be a sequence of positive integers such as (64,), got {hidden_units!r}."
            )
        if not is_number(dropout) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}.")
        self.output_units = int(output_units)
        self.hidden_units = tuple(int(units) for units in hidden)
        self.activation = activation
        self.dropout = dropout
        self.hidden_layers = []
        for index, units in enumerate(self.hidden_units):
            self.hidden_layers.append(
                keras.layers.Dense(
                    units, activation=activation, dtype=self.dtype_policy,
                    name=f"hidden_{index}",
                )
            )
            if dropout:
                self.hidden_layers.append(
                    keras.layers.Dropout(dropout, name=f"dropout_{index}")
                )
        self.output_layer = keras.layers.Dense(
            output_units, dtype=self.dtype_policy, name="output"
        )

    def build(self, input_shape):
        shape = input_shape
        for layer in self.hidden_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.output_layer.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        for layer in self.hidden_layers:
            x = layer(x, training=training)
        return keras.ops.cast(self.output_layer(x), "float32")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_units,)

    def compute_output_spec(self, *args, **kwargs):
        return keras.KerasTensor(super().compute_output_spec(*args, **kwargs).shape, "float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_units": self.output_units,
                "hidden_units": list(self.hidden_units),
                "activation": self.activation,
                "dropout": self.dropout,
            }
        )
        return config
