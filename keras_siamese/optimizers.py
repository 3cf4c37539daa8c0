"""The fine-tuning optimizer: AdamW on a linear-warmup, cosine-decay learning-rate schedule,
and LazyAdam, an Adam(W) that updates only the embedding rows a batch looks up."""

import inspect
import math

import keras
import tensorflow as tf

from keras_siamese.checks import check_integer, is_number


def _check_private_keras_api():
    """LazyAdam overrides or calls these private methods of Keras' optimizers: a Keras release that
    renamed or changed one would make it decay twice or not at all, so a LazyAdam is refused, naming it
    (checked when one is made, so users of the rest of the package never meet it)."""
    expected = {
        "_apply_weight_decay": ["self", "variables"],
        "_use_weight_decay": ["self", "variable"],
        "_get_variable_index": ["self", "variable"],
    }
    for method, parameters in expected.items():
        function = getattr(keras.optimizers.Adam, method, None)
        if function is None or list(inspect.signature(function).parameters) != parameters:
            raise RuntimeError(
                f"keras_siamese.optimizers.LazyAdam needs keras.optimizers.Adam.{method}({', '.join(parameters)}), "
                f"which Keras {keras.__version__} does not have."
            )



@keras.saving.register_keras_serializable(package="keras_siamese")
class LazyAdam(keras.optimizers.Adam):
    """Adam (AdamW with `weight_decay`) that updates only the rows of an embedding table a batch looks up.

    An embedding lookup's gradient is a `tf.IndexedSlices`: a few hundred rows of, say, a
    30k-token table. Keras' Adam densifies it and updates every row of the table, and both
    moments, every step; LazyAdam (as tensorflow-addons' was) sums the gradient of duplicate
    tokens and computes only the rows looked up. Variables with a dense gradient get Keras'
    Adam update (under gradient caching, `mini_batch_size`, every gradient is dense). On MiniLM on a 2-core CPU it measured as fast as Adam, not faster
    (benchmarks/README.md): try it where the tables are large against the rest of the step.

    Rows a batch does not touch keep their weights and moments (nor are they weight-decayed),
    where Adam would still move them on their momentum: over several steps LazyAdam is not
    Adam. On the rows a batch touches it is Adam's step (its bias correction at the optimizer's
    step count), equal to Adam's when those rows' moments have the same history.

    Args:
        learning_rate: a float or a `keras.optimizers.schedules.LearningRateSchedule`.
        beta_1, beta_2, epsilon: as Keras' Adam (there is no `amsgrad`).
        weight_decay: None, or AdamW's decoupled weight decay.
        **kwargs: Keras' other optimizer arguments (`clipnorm`, `use_ema`, ...).

    Example:
    >>> optimizer = LazyAdam(1e-4, weight_decay=0.01)
    >>> model.compile(optimizer=optimizer)  # doctest: +SKIP
    """

    def __init__(self, learning_rate=0.001, *, amsgrad=False, name="lazy_adam", **kwargs):
        if amsgrad:
            raise ValueError("LazyAdam has no amsgrad variant; use keras.optimizers.Adam(amsgrad=True).")
        _check_private_keras_api()
        super().__init__(learning_rate, name=name, **kwargs)

    def _apply_weight_decay(self, variables):
        # Keras decays every variable densely before updating any; LazyAdam decays each one in its
        # own update_step instead, where its gradient says which rows a sparse one touched (the same
        # arithmetic, and `exclude_from_weight_decay` still applies).
        pass

    def update_step(self, gradient, variable, learning_rate):
        decay = self.weight_decay is not None and self._use_weight_decay(variable)
        if not isinstance(gradient, tf.IndexedSlices):
            if decay:
                lr = tf.cast(learning_rate, variable.dtype)
                self.assign_sub(variable, variable * tf.cast(self.weight_decay, variable.dtype) * lr)
            super().update_step(gradient, variable, learning_rate)
            return

        # Sum duplicate rows (a token twice in a batch) first: a scatter would keep only one of them.
        rows, positions = tf.unique(gradient.indices)
        gradient = tf.math.unsorted_segment_sum(
            tf.cast(gradient.values, variable.dtype), positions, num_segments=tf.shape(rows)[0]
        )
        lr = tf.cast(learning_rate, variable.dtype)
        values = _rows(variable, rows)
        if decay:  # AdamW: decayed first, then Adam's step, as Keras does
            values = values - values * tf.cast(self.weight_decay, variable.dtype) * lr

        # Keras' Adam.update_step, op for op, on the gathered rows.
        local_step = tf.cast(self.iterations + 1, variable.dtype)
        beta_1_power = tf.pow(tf.cast(self.beta_1, variable.dtype), local_step)
        beta_2_power = tf.pow(tf.cast(self.beta_2, variable.dtype), local_step)
        alpha = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        m_rows = _rows(m, rows)
        m_rows = m_rows + (gradient - m_rows) * (1 - self.beta_1)
        v_rows = _rows(v, rows)
        v_rows = v_rows + (tf.square(gradient) - v_rows) * (1 - self.beta_2)
        _set_rows(m, rows, m_rows)
        _set_rows(v, rows, v_rows)
        _set_rows(variable, rows, values - m_rows * alpha / (tf.sqrt(v_rows) + self.epsilon))

    def get_config(self):
        config = super().get_config()
        del config["amsgrad"]
        return config


def _rows(variable, rows):
    """`variable[rows]` from a dense read: TensorFlow's sparse variable ops (a `tf.gather` or a
    scatter on the variable itself) switch it to copy-on-read, and every later read of the whole
    table (the forward pass's) would copy it."""
    return tf.gather(tf.convert_to_tensor(variable), rows)


def _set_rows(variable, rows, values):
    """`variable[rows] = values`, assigned whole (see `_rows`)."""
    variable.assign(tf.tensor_scatter_nd_update(tf.convert_to_tensor(variable), rows[:, None], values))


def check_fine_tuning_settings(learning_rate, total_steps, warmup_fraction, weight_decay):
    """Raises `ValueError` for `fine_tuning_optimizer` arguments it cannot use (and runs no TensorFlow op).

    Example:
    >>> check_fine_tuning_settings(1e-4, 1000, warmup_fraction=1.0, weight_decay=0.01)
    Traceback (most recent call last):
    ...
    ValueError: warmup_fraction must be in [0, 1), got 1.0.
    """
    if not is_number(learning_rate) or not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite positive number, got {learning_rate!r}.")
    check_integer(total_steps, "total_steps")
    if not is_number(warmup_fraction) or not 0 <= warmup_fraction < 1:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction!r}.")
    if not is_number(weight_decay) or not 0 <= weight_decay < math.inf:
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}.")


def fine_tuning_optimizer(learning_rate, total_steps, warmup_fraction=0.1, weight_decay=0.01, lazy=False):
    """AdamW whose learning rate rises linearly from 0 to `learning_rate` over the first
    `warmup_fraction` of `total_steps`, then decays to 0 along a cosine (Keras' `CosineDecay`).

    The warmup keeps the first, noisiest steps from undoing a pretrained encoder;
    `weight_decay=0` gives plain Adam on the same schedule, `warmup_fraction=0`
    starts at the peak. Steps past `total_steps` train at learning rate 0.

    Args:
        learning_rate: the peak learning rate, a finite number > 0.
        total_steps: optimizer steps of the whole training.
        warmup_fraction: in [0, 1).
        weight_decay: AdamW's decoupled weight decay, >= 0.
        lazy: a `LazyAdam` (updating only the embedding rows a batch looks up) on the same schedule and decay.

    Example:
    >>> optimizer = fine_tuning_optimizer(1e-4, total_steps=1000)
    >>> model.compile(optimizer=optimizer)  # doctest: +SKIP
    """
    check_fine_tuning_settings(learning_rate, total_steps, warmup_fraction, weight_decay)
    warmup_steps = round(warmup_fraction * total_steps)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else learning_rate,
        decay_steps=max(total_steps - warmup_steps, 1),
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    if lazy:
        return LazyAdam(schedule, weight_decay=weight_decay or None)
    if weight_decay == 0:
        return keras.optimizers.Adam(schedule)
    return keras.optimizers.AdamW(schedule, weight_decay=weight_decay)
