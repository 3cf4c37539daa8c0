"""fine_tuning_optimizer's schedule against its definition, step by step."""

import math

import keras
import pytest

from keras_siamese.optimizers import fine_tuning_optimizer


def schedule_by_definition(step, peak, total, warmup):
    """Linear from 0 to `peak` over `warmup` steps, then a cosine from `peak` to 0 at `total`."""
    if step < warmup:
        return peak * step / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


@pytest.mark.parametrize("total, warmup_fraction", [(100, 0.1), (37, 0.25), (10, 0.0)])
def test_learning_rate_follows_warmup_then_cosine_decay(total, warmup_fraction):
    optimizer = fine_tuning_optimizer(3e-4, total, warmup_fraction=warmup_fraction)
    warmup = round(warmup_fraction * total)
    for step in [0, 1, warmup // 2, warmup, warmup + 1, (warmup + total) // 2, total - 1, total, total + 5]:
        optimizer.iterations.assign(step)  # the learning rate Keras applies at that step
        got = float(optimizer.learning_rate)
        assert got == pytest.approx(schedule_by_definition(step, 3e-4, total, warmup), rel=1e-5, abs=1e-9), step


def test_adamw_with_weight_decay_plain_adam_without():
    decayed = fine_tuning_optimizer(1e-4, 10, weight_decay=0.05)
    assert isinstance(decayed, keras.optimizers.AdamW) and decayed.weight_decay == pytest.approx(0.05)
    plain = fine_tuning_optimizer(1e-4, 10, weight_decay=0)
    assert type(plain) is keras.optimizers.Adam


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"learning_rate": 0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"learning_rate": "1e-4"}, "learning_rate"),
        ({"total_steps": 0}, "total_steps"),
        ({"total_steps": 2.5}, "total_steps"),
        ({"warmup_fraction": 1.0}, "warmup_fraction"),
        ({"warmup_fraction": -0.1}, "warmup_fraction"),
        ({"weight_decay": -1}, "weight_decay"),
        ({"weight_decay": float("inf")}, "weight_decay"),
    ],
)
def test_bad_settings_say_which(arguments, message):
    with pytest.raises(ValueError, match=message):
        fine_tuning_optimizer(**{"learning_rate": 1e-4, "total_steps": 10, **arguments})
