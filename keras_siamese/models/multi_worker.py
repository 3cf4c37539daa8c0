"""Keras' `fit` and `evaluate` under `tf.distribute.MultiWorkerMirroredStrategy`, until
keras-team/keras#20585 is fixed.

Keras 3.15 fails there in two places, both in its TensorFlow trainer:
1. `_maybe_symbolic_build` builds the model from the first batch after
   `strategy.reduce("MEAN", batch, axis=None)`: a collective all-reduce takes no
   nested `(x, y)` batch ("Attempt to convert a value (PerReplica...)").
   `MultiWorkerTraining` builds from the batch's local values instead (only their
   shapes and dtypes are read).
2. After each step Keras reduces every log with `strategy.reduce("MEAN", value,
   axis=0)` across workers: a scalar has no axis 0. `MultiWorkerTraining` returns
   each log as a one-element vector, which that reduction averages back to a scalar.
Nothing else changes, and outside multi-worker mode both methods are Keras' own.

The private method replaced is checked when this module is imported: a Keras release
that renames it or changes its signature fails loudly here (and in the test suite),
not silently in a user's cluster. Delete this module when Keras fixes #20585.
"""

import inspect

import keras
import tensorflow as tf

UPSTREAM_ISSUE = "https://github.com/keras-team/keras/issues/20585"
_REPLACED = "_maybe_symbolic_build"
_EXPECTED_PARAMETERS = ["self", "iterator", "data_batch"]


def _check_keras_still_has_the_replaced_method():
    method = getattr(keras.Model, _REPLACED, None)
    parameters = list(inspect.signature(method).parameters) if callable(method) else None
    if parameters != _EXPECTED_PARAMETERS:
        found = "does not have" if parameters is None else "defines as ({})".format(", ".join(parameters))
        raise ImportError(
            f"keras_siamese's multi-worker override ({UPSTREAM_ISSUE}) replaces keras.Model.{_REPLACED}"
            f"({', '.join(_EXPECTED_PARAMETERS)}), which Keras {keras.__version__} {found}. "
            "Check whether the issue is fixed (then delete keras_siamese/models/multi_worker.py) "
            "or adapt the override."
        )


_check_keras_still_has_the_replaced_method()


def in_multi_worker_mode(strategy):
    """Whether `strategy` is a `MultiWorkerMirroredStrategy` over more than one worker.

    Example:
    >>> in_multi_worker_mode(tf.distribute.get_strategy())
    False
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    cluster = strategy.cluster_resolver.cluster_spec()
    return sum(cluster.num_tasks(job) for job in cluster.jobs) > 1


class MultiWorkerTraining:
    """Mixin for a `keras.Model` subclass: its `fit` and `evaluate` run under
    `MultiWorkerMirroredStrategy` (keras-team/keras#20585). `SentenceEmbedder` has it.

    Example:
    >>> class MyModel(MultiWorkerTraining, keras.Model): ...  # doctest: +SKIP
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is None or not in_multi_worker_mode(self.distribute_strategy):
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = tf.nest.map_structure(self._first_local_value, next(batches))
            break
        return super()._maybe_symbolic_build(data_batch=data_batch)

    def _first_local_value(self, value):
        if isinstance(value, tf.distribute.DistributedValues):
            return self.distribute_strategy.experimental_local_results(value)[0]
        return value

    def train_step(self, data):
        return self._reducible(super().train_step(data))

    def test_step(self, data):
        return self._reducible(super().test_step(data))

    def _reducible(self, logs):
        if not in_multi_worker_mode(self.distribute_strategy):
            return logs
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}
