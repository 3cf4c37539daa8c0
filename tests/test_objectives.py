"""`--loss`: which data each loss trains on, the batches and the model it gets."""

import types

import numpy as np
import pytest

from keras_siamese.data import LABELLED_TEXTS, PAIRS, ROWS_WITH_NEGATIVES, SCORED_PAIRS, TextRows
from keras_siamese.losses import (
    CoSENTLoss,
    ContrastiveLoss,
    CosineSimilarityLoss,
    MatryoshkaLoss,
    MultipleNegativesRankingLoss,
    TripletBatchHardLoss,
    TripletSemiHardLoss,
)
from keras_siamese.objectives import choose_loss, keras_loss, training_batches
from tests.harness import check_bad_input

TEXTS = [f"text {i}" for i in range(12)]
ROWS = {
    LABELLED_TEXTS: TextRows(("text",), (TEXTS,), labels=[i % 3 for i in range(12)], label_column="label"),
    PAIRS: TextRows(("anchor", "positive"), (TEXTS[:6], TEXTS[6:])),
    ROWS_WITH_NEGATIVES: TextRows(("anchor", "positive", "negative"), (TEXTS[:4], TEXTS[4:8], TEXTS[8:])),
    SCORED_PAIRS: TextRows(("sentence1", "sentence2"), (TEXTS[:6], TEXTS[6:]), labels=[0, 1, 1, 0, 1, 0],
                           label_column="label"),
}
# What the issue asks each loss to train on (sentence-transformers' dataset shapes).
TRAINS_ON = {
    "semihard": {LABELLED_TEXTS},
    "batch-hard": {LABELLED_TEXTS},
    "batch-all": {LABELLED_TEXTS},
    "mnrl": {PAIRS, ROWS_WITH_NEGATIVES, LABELLED_TEXTS},
    "contrastive": {SCORED_PAIRS, LABELLED_TEXTS},
    "online-contrastive": {SCORED_PAIRS, LABELLED_TEXTS},
    "cosent": {SCORED_PAIRS},
    "cosine": {SCORED_PAIRS},
}


@pytest.mark.parametrize("loss", sorted(TRAINS_ON))
@pytest.mark.parametrize("shape", sorted(ROWS))
def test_each_loss_takes_exactly_the_shapes_it_can_train_on(loss, shape):
    if shape in TRAINS_ON[loss]:
        assert choose_loss(loss, ROWS[shape]) == loss
    else:
        with pytest.raises(ValueError, match=f"--loss {loss} trains on .*; rows holds {shape}"):
            choose_loss(loss, ROWS[shape])


def test_auto_picks_the_shapes_usual_loss():
    picked = {shape: choose_loss("auto", rows) for shape, rows in ROWS.items()}
    assert picked == {LABELLED_TEXTS: "semihard", PAIRS: "mnrl", ROWS_WITH_NEGATIVES: "mnrl", SCORED_PAIRS: "cosent"}


def test_keras_losses_and_matryoshka():
    assert keras_loss("semihard", 0.5) is None  # TripletSemiHard mines by default
    assert isinstance(keras_loss("semihard", 0.5, (64, 32)).loss, TripletSemiHardLoss)
    kinds = {"batch-hard": TripletBatchHardLoss, "mnrl": MultipleNegativesRankingLoss, "contrastive": ContrastiveLoss,
             "cosent": CoSENTLoss, "cosine": CosineSimilarityLoss}
    for name, kind in kinds.items():
        assert isinstance(keras_loss(name, 0.3), kind)
    wrapped = keras_loss("mnrl", 0.5, (384, 64))
    assert isinstance(wrapped, MatryoshkaLoss) and wrapped.dims == (64, 384)
    assert keras_loss("contrastive", 0.3).margin == 0.3


@pytest.mark.parametrize("loss, shape, texts_per_row, rows_per_batch", [
    ("semihard", LABELLED_TEXTS, 1, 6), ("mnrl", LABELLED_TEXTS, 2, 3), ("contrastive", LABELLED_TEXTS, 2, 4),
    ("mnrl", PAIRS, 2, 4), ("mnrl", ROWS_WITH_NEGATIVES, 3, 4), ("cosent", SCORED_PAIRS, 2, 4),
])
def test_batches_have_a_column_per_text_of_a_row(loss, shape, texts_per_row, rows_per_batch):
    settings = types.SimpleNamespace(seed=0, steps_per_epoch=2, classes_per_batch=3, samples_per_class=2,
                                     batch_size=3 if (loss, shape) == ("mnrl", LABELLED_TEXTS) else 4)
    texts, targets = next(iter(training_batches(loss, ROWS[shape], settings)))
    columns = [texts] if texts_per_row == 1 else list(texts)
    assert len(columns) == texts_per_row and all(column.shape == (rows_per_batch,) for column in columns)
    if shape == SCORED_PAIRS:
        scored = dict(zip(ROWS[shape].texts[0], ROWS[shape].labels))
        assert targets.numpy().tolist() == [scored[text] for text in columns[0].numpy().astype(str)]


def _scored(scores):
    return TextRows(("a", "b"), (["x", "y"], ["z", "w"]), labels=scores, label_column="score", source="sts.csv",
                    lines=np.array([2, 3]), unit="line")


BAD_INPUT = {
    "semi-hard loss on unlabelled pairs": (
        lambda: choose_loss("semihard", ROWS[PAIRS]), ValueError,
        "--loss semihard trains on labelled texts (text, label); rows holds pairs (anchor, positive): use --loss mnrl."),
    "cosine loss on scores beyond 1": (
        lambda: choose_loss("cosine", _scored([0.5, 5])), ValueError,
        "sts.csv, line 3: score 5 is not a finite number in [-1, 1], which --loss cosine (a cosine similarity) takes"),
    "contrastive loss on graded scores": (
        lambda: choose_loss("contrastive", _scored([1, 0.5])), ValueError,
        "sts.csv, line 3: score 0.5 is not 0 or 1, which --loss contrastive takes (1: similar, 0: dissimilar)"),
    "cosent on a non-number score": (
        lambda: choose_loss("cosent", _scored([1, "n/a"])), ValueError,
        "sts.csv, line 3: score 'n/a' is not a finite number, which --loss cosent takes"),
    "unknown loss": (lambda: choose_loss("triplet", ROWS[PAIRS]), ValueError, "loss must be one of ('auto', 'semihard'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
