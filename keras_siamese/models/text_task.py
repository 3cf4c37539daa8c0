"""A Keras model on tokens that takes texts: its preprocessor runs in the data pipeline, as in keras-hub's Task."""

import os

import keras
import numpy as np
import tensorflow as tf

from keras_siamese import inference
from keras_siamese.artifacts import is_local_path, reading
from keras_siamese.atomic import atomic_file_path
from keras_siamese.data.epochs import EpochPosition, ResumeSampling
from keras_siamese.layers.preprocessor import preprocess_batches
from keras_siamese.losses.matryoshka import check_truncate_dim, truncate_embeddings
from keras_siamese.models.global_batch import gather_global_batch, is_distributed, replica_share
from keras_siamese.models.gradient_cache import cached_call, check_mini_batch_size
from keras_siamese.models.multi_worker import MultiWorkerTraining

_RANDOM_STATE = "random_state_"  # key prefix of the saved seed-generator states
# What keras.Model's functional constructor takes besides `inputs` and `outputs`.
_MODEL_ARGUMENTS = {"inputs", "outputs", "name", "trainable"}


@keras.saving.register_keras_serializable(package="keras_siamese")
class TextTask(MultiWorkerTraining, keras.Model):
    """A functional model on token ids whose `fit`, `evaluate` and `predict` take texts.

    The `preprocessor` (strings -> the model's inputs, e.g. a
    `keras_siamese.layers.TextPreprocessor`) is mapped over the data, so the
    train step itself runs no string op and can be compiled or distributed:
    - `fit` / `evaluate`: a `tf.data.Dataset` of `(texts, labels)` batches
      (texts may be a tuple of text batches, one per model input), or arrays
      of texts with `y` and `batch_size`;
    - `predict`: a list or 1-D array of texts is embedded in batches of
      similar length and returned in order (`keras_siamese.inference.encode`;
      an empty list gives a `[0, dim]` array);
      a tuple of text arrays, one per input, or a dataset works too.
    Without a preprocessor it is a plain functional model. Under a
    `tf.distribute` strategy the loss sees the global batch: every replica's
    labels and outputs (`keras_siamese.models.global_batch`).

    With `mini_batch_size=M`, each training step computes the batch's outputs
    M rows at a time without keeping their activations, takes the loss and its
    gradient with respect to all outputs at once (in-batch mining and ranking
    losses still see the whole batch), then recomputes each chunk under the
    tape (gradient caching, `keras_siamese.models.gradient_cache`): the
    memory of an M-row step for any batch size, for a second forward pass.
    Dropout replays the same masks in both passes.

    Args:
        preprocessor: strings -> model inputs, applied to every text input.
        mini_batch_size: `None` (the whole batch at once) or a positive integer.
        dtype: the model's dtype policy (default: Keras' global policy, e.g. `"mixed_bfloat16"`).
        Also `inputs`, `outputs`, `name`, `trainable` as for `keras.Model`;
        other keyword arguments are a TypeError.

    Example:
    >>> tokens = token_inputs()  # doctest: +SKIP
    >>> embedding = L2Normalize()(Pooling("mean")(encoder(tokens)))  # doctest: +SKIP
    >>> model = TextTask(inputs=tokens, outputs=embedding, preprocessor=encoder.preprocessor)  # doctest: +SKIP
    >>> model.predict(["a small dog"]).shape  # doctest: +SKIP
    (1, 128)
    """

    def __init__(self, *args, preprocessor=None, mini_batch_size=None, dtype=None, **kwargs):
        unknown = sorted(set(kwargs) - _MODEL_ARGUMENTS)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments: {', '.join(unknown)}.")
        super().__init__(*args, **kwargs)
        if dtype is not None:  # the policy it was built under (a functional model's config leaves it out)
            self.dtype_policy = dtype
        if isinstance(preprocessor, dict):  # from get_config
            owner = preprocessor.get("preprocessor_of")
            preprocessor = self.get_layer(owner).preprocessor if owner else keras.layers.deserialize(preprocessor)
        self.preprocessor = preprocessor
        self.mini_batch_size = check_mini_batch_size(mini_batch_size)

    def call(self, inputs, training=None, mask=None, **kwargs):
        if not training or self.mini_batch_size is None:
            return super().call(inputs, training=training, mask=mask, **kwargs)
        return cached_call(
            lambda chunk: super(TextTask, self).call(chunk, training=True, mask=mask, **kwargs),
            inputs, self.mini_batch_size, self.random_state(),
        )

    def random_state(self):
        """The variables that make training random: Keras' seed-generator states (dropout's).

        Gradient caching replays them; `save_weights`, `save` and so `BackupAndRestore`
        keep them (Keras' own weight files leave them out), so a resumed training draws
        the dropout masks the uninterrupted one would have drawn.
        """
        return [variable for variable in self.non_trainable_variables if "int" in variable.dtype]

    def save_own_variables(self, store):
        super().save_own_variables(store)
        for index, variable in enumerate(self.random_state()):
            store[f"{_RANDOM_STATE}{index}"] = keras.ops.convert_to_numpy(variable)

    def load_own_variables(self, store):
        keys = list(store.keys())
        super().load_own_variables({key: store[key] for key in keys if not key.startswith(_RANDOM_STATE)})
        for index, variable in enumerate(self.random_state()):
            if f"{_RANDOM_STATE}{index}" in keys:  # files saved before they were kept have none
                variable.assign(np.asarray(store[f"{_RANDOM_STATE}{index}"]))

    def save(self, filepath, overwrite=True, **kwargs):
        """Keras' `save`; a local file is written atomically (a crash leaves the previous one)."""
        _save_atomically(super().save, filepath, overwrite, **kwargs)

    def save_weights(self, filepath, overwrite=True, **kwargs):
        """Keras' `save_weights`, atomic like `save` (so `ModelCheckpoint` and `BackupAndRestore`)."""
        _save_atomically(super().save_weights, filepath, overwrite, **kwargs)

    def load_weights(self, filepath, *args, **kwargs):
        """Keras' `load_weights`; an empty, truncated or corrupt file is an `UnreadableFileError`
        naming it (so is a `BackupAndRestore` backup that a full disk cut short)."""
        with reading(filepath, "Keras weights file"):
            return super().load_weights(filepath, *args, **kwargs)

    def fit(self, x=None, y=None, batch_size=None, shuffle=True, callbacks=None, **kwargs):
        """Keras' `fit`, texts in. With a `keras.callbacks.BackupAndRestore` among the callbacks
        and `x` from one of `keras_siamese.data`'s batch generators, a `ResumeSampling(x)` is
        added (unless there is one), so a resumed training draws the batches it would have."""
        callbacks = list(callbacks or [])
        position = getattr(x, "epoch_position", None)
        if isinstance(position, EpochPosition):
            callbacks.insert(0, _FirstEpochWhereTheDataStood(position))
            if _has(callbacks, keras.callbacks.BackupAndRestore) and not _has(callbacks, ResumeSampling):
                callbacks.append(ResumeSampling(x))
        x, y, batch_size = self._text_batches(x, y, batch_size, shuffle)
        return super().fit(x, y, batch_size=batch_size, shuffle=False, callbacks=callbacks, **kwargs)

    def distributed_batches(self, dataset_fn):
        """The batches `dataset_fn` makes, for `fit` under the model's `tf.distribute` strategy.

        `dataset_fn(input_context)` returns this input pipeline's share of every global
        batch, e.g. `class_balanced_batches(..., input_context=input_context)`: under
        `MultiWorkerMirroredStrategy` each worker reads its slice of the same global
        batches, and the loss mines them whole. The preprocessor is mapped over each
        pipeline. A `BackupAndRestore` in `fit` resumes these batches exactly, as it does
        the batch generators' own datasets.

        Example:
        >>> with strategy.scope():  # doctest: +SKIP
        ...     model = TripletSemiHard.from_encoder(encoder)
        ...     model.compile(optimizer="adam")
        >>> batches = model.distributed_batches(  # doctest: +SKIP
        ...     lambda context: class_balanced_batches(texts, labels, input_context=context))
        >>> model.fit(batches, epochs=2)  # doctest: +SKIP
        """
        positions = []

        def pipeline(input_context):
            dataset = dataset_fn(input_context)
            positions.append(getattr(dataset, "epoch_position", None))
            return self._preprocessed(dataset)

        batches = self.distribute_strategy.distribute_datasets_from_function(pipeline)
        if len(positions) == 1 and isinstance(positions[0], EpochPosition):
            batches.epoch_position = positions[0]
        return batches

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        x, y, batch_size = self._text_batches(x, y, batch_size, shuffle=False)
        return super().evaluate(x, y, batch_size=batch_size, **kwargs)

    def predict(self, x, batch_size=None, verbose="auto", truncate_dim=None, **kwargs):
        """Keras' `predict`, texts in; `truncate_dim=d` returns the first d dimensions of each
        embedding, L2-normalised again (a `keras_siamese.losses.MatryoshkaLoss` model)."""
        if truncate_dim is not None:
            check_truncate_dim(truncate_dim, self.outputs[0].shape[-1])
        if x is None:
            raise ValueError(
                f"{type(self).__name__}.predict takes texts (a list, numpy array or tf.string) or a dataset, got None."
            )
        if self.preprocessor is not None and (inference.is_texts(x) or _is_empty(x)):
            return inference.encode(self, list(_as_array(x)), batch_size=batch_size or 64, truncate_dim=truncate_dim)
        if self.preprocessor is not None and _is_text_columns(x):
            x = tf.data.Dataset.from_tensor_slices(tuple(_as_array(column) for column in x)).batch(batch_size or 64)
            x = x.map(lambda *texts: (texts,))  # one tuple of inputs, not (x, y)
        outputs = super().predict(self._preprocessed(x), batch_size=batch_size, verbose=verbose, **kwargs)
        return outputs if truncate_dim is None else truncate_embeddings(outputs, truncate_dim).numpy()

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss over the global batch (all replicas' rows under tf.distribute).

        Under a strategy the compiled loss must reduce the batch to a scalar, as every
        `keras_siamese.losses` loss does.
        """
        if not is_distributed():
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        y, y_pred, sample_weight = gather_global_batch(y, y_pred, sample_weight)
        total = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        # Keras divides the add_loss terms by the replica count but not a scalar loss:
        # the global batch's loss gets its replica share here.
        additional = replica_share(keras.ops.sum(self.losses)) if self.losses else 0.0
        return replica_share(total - additional) + additional

    def _text_batches(self, x, y, batch_size, shuffle):
        """Texts as a dataset of token batches; other inputs as they are."""
        if self.preprocessor is None:
            return x, y, batch_size
        if inference.is_texts(x) or _is_text_columns(x):
            columns = _as_array(x) if inference.is_texts(x) else tuple(_as_array(column) for column in x)
            x = tf.data.Dataset.from_tensor_slices(columns if y is None else (columns, np.asarray(y)))
            if shuffle:
                x = x.shuffle(len(x), reshuffle_each_iteration=True)
            x, y, batch_size = x.batch(batch_size or 32), None, None
        return self._preprocessed(x), y, batch_size

    def _preprocessed(self, x):
        if self.preprocessor is None or not isinstance(x, tf.data.Dataset):
            return x
        return preprocess_batches(x, self.preprocessor)

    def get_config(self):
        config = super().get_config()
        config["mini_batch_size"] = self.mini_batch_size
        # Saved so that a reloaded mixed_float16 model compiles with loss scaling again.
        config["dtype"] = keras.dtype_policies.serialize(self.dtype_policy)
        if self.preprocessor is not None:
            # One object, saved once: the preprocessor of one of the model's layers is named, not copied.
            owners = [layer.name for layer in self.layers if getattr(layer, "preprocessor", None) is self.preprocessor]
            config["preprocessor"] = (
                {"preprocessor_of": owners[0]} if owners else keras.layers.serialize(self.preprocessor)
            )
        return config


def _save_atomically(save, filepath, overwrite, **kwargs):
    """Runs Keras' `save(path, ...)` on a partial beside a local `filepath`, then renames it into place."""
    if not is_local_path(filepath) or (not overwrite and os.path.exists(filepath)):
        return save(filepath, overwrite=overwrite, **kwargs)
    with atomic_file_path(filepath) as partial_path:
        save(partial_path, overwrite=True, **kwargs)


class _FirstEpochWhereTheDataStood(keras.callbacks.Callback):
    """Under a `tf.distribute` strategy Keras builds the model from a first batch it draws,
    which starts a pass of an epoch dataset; `fit`'s first epoch starts where the data stood."""

    def __init__(self, position):
        super().__init__()
        self.position = position
        self.start = position.next_batch

    def on_train_begin(self, logs=None):
        self.position.seek(self.start)


def _has(callbacks, kind):
    return any(isinstance(callback, kind) for callback in callbacks)


def _is_text_columns(x):
    """A list or tuple of text batches, one per model input."""
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(
        not isinstance(column, (str, bytes)) and inference.is_texts(column) for column in x
    )


def _is_empty(x):
    return isinstance(x, (list, tuple, np.ndarray)) and len(x) == 0


def _as_array(texts):
    if isinstance(texts, tf.Tensor):
        return texts.numpy().astype(object)
    return np.asarray([t.encode("utf-8") if isinstance(t, str) else t for t in texts], dtype=object)
