"""Gradient caching (`mini_batch_size`): one cached step equals the uncached step on the same batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.losses import MultipleNegativesRankingLoss, TripletBatchHardLoss, triplet_semihard_loss
from keras_siamese.models import TripletSemiHard, pair_model

BATCH = 16  # 4 classes x 4 texts
LEARNING_RATE = 0.1


@pytest.fixture
def batch(glosses):
    texts, labels = glosses
    rows = np.concatenate([np.flatnonzero(labels == label)[:4] for label in np.unique(labels)[:4]])
    rows = np.random.default_rng(0).permutation(rows)
    return [texts[row] for row in rows], labels[rows]


def _model(tiny_encoder_factory, mini_batch_size=None, dropout=0.0):
    keras.utils.set_random_seed(0)  # same weights and seed states for every model built
    encoder = tiny_encoder_factory(dropout=dropout)
    return TripletSemiHard.from_encoder(
        encoder, pooling="mean", hidden_units=(16,), output_units=8, mini_batch_size=mini_batch_size
    )


def _one_step(model, x, y, loss=None):
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss=loss)
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    return model.get_weights()


def _largest_difference(weights, others):
    return max(float(np.abs(a - b).max()) for a, b in zip(weights, others))


@pytest.mark.parametrize("mini_batch_size", [4, 5, 100], ids=["divides", "remainder", "larger_than_batch"])
@pytest.mark.parametrize("loss", [None, TripletBatchHardLoss()], ids=["semi_hard", "batch_hard"])
def test_a_cached_step_gives_the_weights_of_the_uncached_step(tiny_encoder_factory, batch, loss, mini_batch_size):
    texts, labels = batch
    initial = _model(tiny_encoder_factory).get_weights()
    uncached = _one_step(_model(tiny_encoder_factory), np.array(texts, object), labels, loss)
    cached = _one_step(_model(tiny_encoder_factory, mini_batch_size), np.array(texts, object), labels, loss)
    assert _largest_difference(uncached, initial) > 1e-3  # the step did change the weights
    assert _largest_difference(cached, uncached) < 1e-5


def test_a_cached_multiple_negatives_ranking_step_gives_the_uncached_weights(tiny_encoder_factory, batch):
    texts, labels = batch
    anchors, positives = np.array(texts[:8], object), np.array(texts[8:], object)
    weights = []
    for mini_batch_size in (None, 3):
        model = pair_model(_model(tiny_encoder_factory), mini_batch_size=mini_batch_size)
        weights.append(_one_step(model, (anchors, positives), np.zeros(8), MultipleNegativesRankingLoss()))
    assert _largest_difference(weights[0], weights[1]) < 1e-5


def test_dropout_replays_the_same_masks_in_the_second_pass(tiny_encoder_factory, batch):
    """Oracle: the chunks embedded one after another under one tape (what the first pass
    draws), the semi-hard loss of all of them, one SGD step."""
    texts, labels = batch
    mini_batch_size, learning_rate = 4, LEARNING_RATE
    cached = _one_step(_model(tiny_encoder_factory, mini_batch_size, dropout=0.3), np.array(texts, object), labels)

    model = _model(tiny_encoder_factory, dropout=0.3)
    tokens = model.preprocessor(texts)
    with tf.GradientTape() as tape:
        chunks = [
            model({key: value[start : start + mini_batch_size] for key, value in tokens.items()}, training=True)
            for start in range(0, BATCH, mini_batch_size)
        ]
        loss = triplet_semihard_loss(labels, tf.concat(chunks, axis=0), margin=model.margin)
    gradients = tape.gradient(loss, model.trainable_variables)
    for variable, gradient in zip(model.trainable_variables, gradients):
        variable.assign_sub(learning_rate * tf.convert_to_tensor(gradient))
    uncached_with_whole_batch_dropout = _one_step(_model(tiny_encoder_factory, dropout=0.3), np.array(texts, object), labels)

    assert _largest_difference(cached, model.get_weights()) < 1e-5
    assert _largest_difference(cached, uncached_with_whole_batch_dropout) > 1e-4  # dropout is on


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "4"])
def test_mini_batch_size_must_be_a_positive_integer(tiny_encoder_factory, bad):
    with pytest.raises(ValueError, match="mini_batch_size must be a positive integer or None, got"):
        _model(tiny_encoder_factory, mini_batch_size=bad)


def test_mini_batch_size_is_in_the_config_and_unknown_arguments_are_refused(tiny_encoder_factory):
    model = _model(tiny_encoder_factory, mini_batch_size=6)
    assert TripletSemiHard.from_config(model.get_config()).mini_batch_size == 6
    with pytest.raises(TypeError, match="unexpected keyword arguments: mini_batch"):
        TripletSemiHard(inputs=model.inputs, outputs=model.outputs, mini_batch=6)
