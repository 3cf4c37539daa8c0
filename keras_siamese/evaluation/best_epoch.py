"""A Keras callback that keeps every epoch's metrics and names the best epoch, across resumed runs."""

import json
import os

import keras

from keras_siamese.atomic import atomic_file_path


class BestEpoch(keras.callbacks.Callback):
    """Records chosen metrics of every epoch and says which epoch was best.

    At each epoch end it reads `monitor` (and `tie_breakers`, then the earlier
    epoch wins) from the logs, so list it after the callback that writes them
    (e.g. `RetrievalEvaluation`). With `path` the record is written there as
    JSON after every epoch (atomically) and read back when training starts: a
    `fit` resumed by `keras.callbacks.BackupAndRestore` still knows the epochs
    the killed run finished. An epoch run again replaces its old record.

    Args:
        monitor: the log key to maximise, e.g. `"val_hit@1"`.
        tie_breakers: further log keys to maximise when `monitor` ties.
        keep: other log keys to record, e.g. `("loss",)`.
        path: a JSON file keeping the record; `None` keeps it in memory only.

    Attributes:
        epochs: `{epoch number (1-based): {key: value}}`, keys without the `val_` prefix.

    Example:
    >>> best = BestEpoch("val_hit@1", tie_breakers=("val_hit@5",), path="run/epochs.json")  # doctest: +SKIP
    >>> model.fit(batches, epochs=4, callbacks=[evaluation, best])  # doctest: +SKIP
    >>> best.best_epoch, best.best  # doctest: +SKIP
    (3, {'hit@1': 0.61, 'hit@5': 0.83, 'loss': 0.21})
    """

    def __init__(self, monitor, tie_breakers=(), keep=(), path=None):
        super().__init__()
        self.keys = (monitor, *tie_breakers)
        self.keep = tuple(keep)
        self.path = path
        self.epochs = {}

    def on_train_begin(self, logs=None):
        if self.path is not None and os.path.exists(self.path):
            with open(self.path) as file:
                self.epochs = {int(epoch): metrics for epoch, metrics in json.load(file).items()}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        missing = [key for key in self.keys + self.keep if key not in logs]
        if missing:
            raise KeyError(f"BestEpoch needs {', '.join(missing)} in the epoch logs; list it after the callback writing them.")
        self.epochs[epoch + 1] = {_unprefixed(key): float(logs[key]) for key in self.keys + self.keep}
        if self.path is not None:
            with atomic_file_path(self.path) as partial, open(partial, "w") as file:
                json.dump(self.epochs, file, indent=2)

    @property
    def best_epoch(self):
        """The epoch (1-based) with the highest monitored values; `None` before the first epoch."""
        if not self.epochs:
            return None
        names = [_unprefixed(key) for key in self.keys]
        return max(self.epochs, key=lambda epoch: (*(self.epochs[epoch][name] for name in names), -epoch))

    @property
    def best(self):
        """The best epoch's recorded metrics."""
        return self.epochs[self.best_epoch]


def _unprefixed(key):
    return key.removeprefix("val_")
