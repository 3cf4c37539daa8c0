"""BestEpoch: every epoch's metrics, the best by the monitored keys, kept across a resumed fit."""

import json

import pytest

from keras_siamese.evaluation import BestEpoch

LOGS = [
    {"val_hit@1": 0.50, "val_hit@5": 0.70, "loss": 0.9},
    {"val_hit@1": 0.60, "val_hit@5": 0.75, "loss": 0.7},
    {"val_hit@1": 0.60, "val_hit@5": 0.80, "loss": 0.6},  # ties epoch 2 on hit@1, wins on hit@5
    {"val_hit@1": 0.60, "val_hit@5": 0.80, "loss": 0.5},  # ties epoch 3 on both: the earlier wins
]


def _best_by_definition(records):
    best = None
    for epoch in sorted(records):
        key = (records[epoch]["hit@1"], records[epoch]["hit@5"])
        if best is None or key > best[0]:
            best = (key, epoch)
    return best[1]


def test_records_every_epoch_and_names_the_best_with_ties_to_the_earlier():
    best = BestEpoch("val_hit@1", tie_breakers=("val_hit@5",), keep=("loss",))
    assert best.best_epoch is None
    for epoch, logs in enumerate(LOGS):
        best.on_epoch_end(epoch, logs)
    assert best.epochs[2] == {"hit@1": 0.60, "hit@5": 0.75, "loss": 0.7}
    assert best.best_epoch == _best_by_definition(best.epochs) == 3
    assert best.best == {"hit@1": 0.60, "hit@5": 0.80, "loss": 0.6}


def test_a_resumed_run_knows_the_epochs_the_killed_run_finished(tmp_path):
    path = tmp_path / "epochs.json"
    killed = BestEpoch("val_hit@1", tie_breakers=("val_hit@5",), path=str(path))
    killed.on_train_begin()
    for epoch, logs in enumerate(LOGS[:3]):
        killed.on_epoch_end(epoch, logs)
    resumed = BestEpoch("val_hit@1", tie_breakers=("val_hit@5",), path=str(path))
    resumed.on_train_begin()
    resumed.on_epoch_end(2, {**LOGS[2], "val_hit@1": 0.1})  # epoch 3 run again replaces its record
    resumed.on_epoch_end(3, LOGS[3])
    assert sorted(resumed.epochs) == [1, 2, 3, 4] and resumed.epochs[3]["hit@1"] == 0.1
    assert resumed.best_epoch == _best_by_definition(resumed.epochs) == 4
    assert sorted(json.loads(path.read_text())) == ["1", "2", "3", "4"]


def test_a_missing_metric_names_the_callback_to_list_first():
    with pytest.raises(KeyError, match="BestEpoch needs val_hit@1 in the epoch logs"):
        BestEpoch("val_hit@1").on_epoch_end(0, {"loss": 1.0})
