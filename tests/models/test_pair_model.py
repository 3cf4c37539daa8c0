"""Every loss of the family trains a real tiny ALBERT through plain `compile(loss=...)` + `fit`."""

import json
import zipfile

import keras
import numpy as np
import pytest

from keras_siamese.data import anchor_positive_batches, class_balanced_batches, pair_batches
from keras_siamese.losses import (
    ContrastiveLoss,
    CosineSimilarityLoss,
    MultipleNegativesRankingLoss,
    OnlineContrastiveLoss,
    TripletBatchAllLoss,
    TripletBatchHardLoss,
    triplet_batch_all_loss,
    triplet_batch_hard_loss,
)
from keras_siamese.models import TripletSemiHard, pair_model


def _embedder(tiny_encoder_factory):
    keras.utils.set_random_seed(0)
    return TripletSemiHard.from_encoder(tiny_encoder_factory(), pooling="mean", hidden_units=(16,), output_units=16)


def _fixed(dataset, count=4):
    """The first `count` batches, materialised so `evaluate` sees the same data twice."""
    return [batch for batch in dataset.take(count)]


def _mean_loss(model, batches):
    return float(np.mean([model.evaluate(x, y, verbose=0, batch_size=len(y)) for x, y in batches]))


@pytest.mark.slow
@pytest.mark.parametrize(
    "loss",
    [ContrastiveLoss(margin=0.5), OnlineContrastiveLoss(margin=0.5), CosineSimilarityLoss()],
    ids=lambda loss: type(loss).__name__,
)
def test_pair_losses_train_on_pair_batches(tiny_encoder_factory, glosses, loss):
    texts, labels = glosses
    model = pair_model(_embedder(tiny_encoder_factory))
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=loss)
    held = _fixed(pair_batches(texts, labels, batch_size=32, seed=7))
    before = _mean_loss(model, held)
    model.fit(pair_batches(texts, labels, batch_size=32, seed=1, batches_per_epoch=60), epochs=1, verbose=0)
    assert _mean_loss(model, held) < 0.97 * before


@pytest.mark.slow
def test_ranking_loss_trains_on_anchor_positive_batches(tiny_encoder_factory, glosses):
    texts, labels = glosses
    model = pair_model(_embedder(tiny_encoder_factory))
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=MultipleNegativesRankingLoss())
    # anchor_positive_batches yields labels too; the ranking loss ignores them.
    held = _fixed(anchor_positive_batches(texts, labels, batch_size=12, seed=7))
    before = _mean_loss(model, held)
    model.fit(anchor_positive_batches(texts, labels, batch_size=12, seed=1, batches_per_epoch=60), verbose=0)
    assert _mean_loss(model, held) < 0.97 * before


@pytest.mark.parametrize(
    "loss_class, loss_fn",
    [(TripletBatchHardLoss, triplet_batch_hard_loss), (TripletBatchAllLoss, triplet_batch_all_loss)],
    ids=["batch_hard", "batch_all"],
)
def test_compiled_triplet_loss_replaces_mining(tiny_encoder_factory, glosses, loss_class, loss_fn):
    """Evaluate reports the compiled loss of the predicted embeddings, and the mining
    statistics, which that loss does not compute, are not reported as zeros."""
    texts, labels = glosses
    model = _embedder(tiny_encoder_factory)
    model.compile(optimizer="adam", loss=loss_class(margin=0.5))
    (batch_texts, batch_labels), = _fixed(class_balanced_batches(texts, labels, 8, 4, seed=7), count=1)
    reported = model.evaluate(batch_texts, batch_labels, batch_size=32, verbose=0, return_dict=True)
    embeddings = model.predict(batch_texts, batch_size=32, verbose=0)
    assert reported == {"loss": pytest.approx(float(loss_fn(batch_labels, embeddings, margin=0.5)), rel=1e-5)}


def test_pair_model_shares_one_embedder_and_round_trips(tiny_encoder_factory, tmp_path):
    embedder = _embedder(tiny_encoder_factory)
    model = pair_model(embedder, num_texts=3)
    texts = [np.array(["a small dog", ""], dtype=object), np.array(["to run", "a cat"], dtype=object),
             np.array(["red", "blue"], dtype=object)]
    stacked = model.predict(texts, verbose=0)
    assert stacked.shape == (2, 3, 16)
    for index, column in enumerate(texts):
        np.testing.assert_allclose(stacked[:, index], embedder.predict(column, verbose=0), atol=1e-6)
    assert len(model.trainable_weights) == len(embedder.trainable_weights)
    model.save(tmp_path / "pairs.keras")
    reloaded = keras.saving.load_model(tmp_path / "pairs.keras")
    np.testing.assert_allclose(reloaded.predict(texts, verbose=0), stacked, atol=1e-6)


@pytest.mark.parametrize("num_texts", [1, 2.0, True])
def test_num_texts_must_be_an_integer_of_at_least_two(tiny_encoder_factory, num_texts):
    with pytest.raises(ValueError, match="num_texts"):
        pair_model(_embedder(tiny_encoder_factory), num_texts=num_texts)


def test_a_pair_model_saved_under_the_0_1_0_class_name_still_loads(tiny_encoder_factory, tmp_path):
    """keras_siamese 0.1.0 named the class of pair models `TextTask` (keras_siamese.models.text_task)."""
    model = pair_model(_embedder(tiny_encoder_factory))
    texts = [np.array(["a small dog", ""], dtype=object), np.array(["to run", "a cat"], dtype=object)]
    model.save(tmp_path / "new.keras")
    with zipfile.ZipFile(tmp_path / "new.keras") as new, zipfile.ZipFile(tmp_path / "old.keras", "w") as old:
        for item in new.infolist():
            data = new.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                assert config["class_name"] == "SentenceEmbedder"
                config.update(class_name="TextTask", module="keras_siamese.models.text_task",
                              registered_name="keras_siamese>TextTask")
                data = json.dumps(config).encode()
            old.writestr(item, data)
    reloaded = keras.saving.load_model(tmp_path / "old.keras")
    np.testing.assert_allclose(reloaded.predict(texts, verbose=0), model.predict(texts, verbose=0), atol=1e-6)
