"""A finite tf.data pipeline whose every pass over the data is a new, reproducible epoch,
and the callback that resumes it exactly where an interrupted training stopped."""

import itertools

import keras
import tensorflow as tf


class EpochPosition:
    """Where the next pass of an epoch dataset starts, in batches from the start of epoch 0.

    Each pass takes `batches_per_epoch` batches; a pass that starts mid-epoch ends in
    the next epoch. `seek(n)` moves the next pass to batch n (`ResumeSampling` does).

    Example:
    >>> position = EpochPosition(batches_per_epoch=10)
    >>> position.seek(25)
    >>> position.next_batch
    25
    """

    def __init__(self, batches_per_epoch):
        self.batches_per_epoch = batches_per_epoch
        self.next_batch = 0

    def seek(self, batch):
        self.next_batch = int(batch)

    def next_pass(self, batches_for_epoch):
        """The batches of the next pass, from `batches_for_epoch(epoch)` iterables."""
        epoch, offset = divmod(self.next_batch, self.batches_per_epoch)
        self.next_batch += self.batches_per_epoch
        yield from itertools.islice(batches_for_epoch(epoch), offset, None)
        if offset:
            yield from itertools.islice(batches_for_epoch(epoch + 1), offset)


def epoch_dataset(batches_for_epoch, batches_per_epoch, output_signature, gather=None, input_context=None):
    """Builds a dataset that yields `batches_for_epoch(e)` on its e-th pass (e = 0, 1, ...).

    Keras iterates a finite dataset afresh at each epoch of `model.fit`, so the first
    epoch gets `batches_for_epoch(0)`, the second `batches_for_epoch(1)`, and so on:
    epochs differ, and a new dataset built with the same arguments replays the same
    sequence. The cardinality is set to `batches_per_epoch`, which gives Keras progress
    bars their length; `.repeat()` works too and keeps counting epochs. The returned
    dataset's `epoch_position` (an `EpochPosition`) says where the next pass starts.

    Args:
        batches_for_epoch: function of the epoch number returning an iterable of
            `batches_per_epoch` batches, each matching `output_signature`.
        batches_per_epoch: number of batches that function returns.
        output_signature: nested `tf.TensorSpec` of one batch.
        gather: optional function mapped over the batches in parallel, in order
            (indices -> the batch's tensors); the result is prefetched.
        input_context: a `tf.distribute.InputContext` (from
            `strategy.distribute_datasets_from_function`): every input pipeline draws
            the same global batches and yields its replicas' contiguous slices of
            each, one element per replica, `rows / num_replicas_in_sync` rows each.

    Example:
    >>> import numpy as np
    >>> ds = epoch_dataset(lambda e: [np.array([e, e])], 1, tf.TensorSpec([2], tf.int64))
    >>> [b.numpy().tolist() for b in ds], [b.numpy().tolist() for b in ds]
    ([[0, 0]], [[1, 1]])
    """
    position = EpochPosition(batches_per_epoch)
    dataset = tf.data.Dataset.from_generator(
        lambda: position.next_pass(batches_for_epoch), output_signature=output_signature
    )
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches_per_epoch))
    if gather is not None:
        dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if input_context is not None:
        dataset = _replica_slices(dataset, input_context, batches_per_epoch)
    if gather is not None or input_context is not None:
        dataset = dataset.prefetch(tf.data.AUTOTUNE)
    dataset.epoch_position = position
    return dataset


def _replica_slices(dataset, input_context, batches_per_epoch):
    """This input pipeline's replicas' slices of every global batch, one element per replica
    (tf.distribute hands a pipeline's consecutive elements to its replicas)."""
    if not isinstance(input_context, tf.distribute.InputContext):
        raise ValueError(f"input_context must be a tf.distribute.InputContext, got {type(input_context).__name__}.")
    rows = tf.nest.flatten(dataset.element_spec)[0].shape[0]
    # At least one replica a pipeline (an InputContext built by hand counts 1 replica by default).
    replicas = max(input_context.num_replicas_in_sync, input_context.num_input_pipelines)
    if rows % replicas:
        raise ValueError(
            f"The global batch of {rows} rows does not split evenly over {replicas} replicas; "
            "choose a batch size divisible by the number of replicas."
        )
    replica_rows = rows // replicas
    pipeline_replicas = replicas // input_context.num_input_pipelines
    start = input_context.input_pipeline_id * pipeline_replicas * replica_rows

    def own_rows(*element):
        sliced = tf.nest.map_structure(lambda tensor: tensor[start : start + pipeline_replicas * replica_rows], element)
        return sliced if len(sliced) > 1 else sliced[0]

    dataset = dataset.map(own_rows)
    if pipeline_replicas == 1:
        return dataset
    dataset = dataset.rebatch(replica_rows, drop_remainder=True)
    return dataset.apply(tf.data.experimental.assert_cardinality(pipeline_replicas * batches_per_epoch))


class ResumeSampling(keras.callbacks.Callback):
    """Keeps a batch generator in step with the optimizer, so a resumed training is exact.

    `keras.callbacks.BackupAndRestore` restores the weights, the optimizer and the
    epoch after a crash, but a new process's datasets start again at their epoch 0.
    With this callback, `fit` starts the dataset at the optimizer's step count
    (`optimizer.iterations` batches from the start of epoch 0, as the backup
    restored it), counts the steps from there, and stops once `epochs` x
    batches-per-epoch steps are done in all. A run
    killed at any moment and restarted ends with the weights of an uninterrupted run
    of the same seed, whether backups are taken per epoch or every N steps. The step
    count must start at 0 with this dataset (a fresh optimizer). After a mid-epoch
    resume the epochs Keras numbers (progress bars, `ModelCheckpoint` names) are
    shifted from the dataset's epochs; the batches and weights are not. Under
    `mixed_float16` a step whose gradients overflow is skipped without counting in
    `optimizer.iterations`: training runs on in step, but a resume from a backup
    taken after skipped steps starts that many batches early.

    Args:
        dataset: a dataset of `keras_siamese.data`'s batch generators
            (`class_balanced_batches`, `triplet_batches`, `pair_batches`,
            `anchor_positive_batches`): the one passed to `fit`.

    Example:
    >>> batches = class_balanced_batches(texts, labels)  # doctest: +SKIP
    >>> model.fit(batches, epochs=4, callbacks=[
    ...     keras.callbacks.BackupAndRestore("backup"), ResumeSampling(batches)])  # doctest: +SKIP
    """

    def __init__(self, dataset):
        super().__init__()
        position = getattr(dataset, "epoch_position", None)
        if not isinstance(position, EpochPosition):
            raise ValueError(
                "ResumeSampling takes a dataset made by keras_siamese.data's batch generators "
                f"(class_balanced_batches, triplet_batches, pair_batches, anchor_positive_batches), got {dataset!r}."
            )
        self.position = position
        self._steps_done = None

    def on_train_begin(self, logs=None):
        self._steps_done = None  # read at the first epoch, after BackupAndRestore has restored the optimizer

    def on_epoch_begin(self, epoch, logs=None):
        if self._steps_done is None:
            self._steps_done = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.position.seek(self._steps_done)
        self._steps_left = self.params["epochs"] * self.position.batches_per_epoch - self._steps_done

    def on_epoch_end(self, epoch, logs=None):
        self._steps_done += self.position.batches_per_epoch  # every pass yields one epoch of batches

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 >= self._steps_left:  # `batch` counts this epoch's steps from 0
            self.model.stop_training = True
