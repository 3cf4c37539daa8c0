"""L2 normalisation as a serialisable layer."""

import math

import keras
from keras import ops

from keras_siamese.checks import is_integer, is_number


@keras.saving.register_keras_serializable(package="keras_siamese")
class L2Normalize(keras.layers.Layer):
    """Scales each vector to unit L2 norm along `axis`.

    The serialisable replacement for the study's
    `Lambda(lambda x: tf.math.l2_normalize(x, axis=1))`:
    `x / sqrt(max(sum(x**2), epsilon))`, computed in float32 and returned as
    float32 whatever the dtype policy (mixed precision included), so a zero
    vector stays zero instead of becoming NaN.

    Args:
        axis: axis to normalise along.
        epsilon: lower bound on the squared norm.

    Example:
    >>> L2Normalize()(tf.constant([[3.0, 4.0]])).numpy()
    array([[0.6, 0.8]], dtype=float32)
    """

    def __init__(self, axis=-1, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.autocast = False  # a float32 input stays float32
        if not is_integer(axis):
            raise ValueError(f"axis must be an integer, got {axis!r}.")
        if not is_number(epsilon) or not 0 < epsilon < math.inf:
            raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}.")
        self.axis = int(axis)
        self.epsilon = epsilon

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        squared_norm = ops.sum(ops.square(x), axis=self.axis, keepdims=True)
        return x * ops.rsqrt(ops.maximum(squared_norm, self.epsilon))

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, *args, **kwargs):
        return keras.KerasTensor(super().compute_output_spec(*args, **kwargs).shape, "float32")

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "epsilon": self.epsilon})
        return config
