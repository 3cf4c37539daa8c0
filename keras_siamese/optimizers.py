"""The fine-tuning optimizer: AdamW on a linear-warmup, cosine-decay learning-rate schedule."""

import math

import keras

from keras_siamese.checks import check_integer, is_number


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


def fine_tuning_optimizer(learning_rate, total_steps, warmup_fraction=0.1, weight_decay=0.01):
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
    if weight_decay == 0:
        return keras.optimizers.Adam(schedule)
    return keras.optimizers.AdamW(schedule, weight_decay=weight_decay)
