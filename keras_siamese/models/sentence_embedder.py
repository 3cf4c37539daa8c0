"""`SentenceEmbedder`: a sentence-embedding model on tokens that takes texts, its preprocessor beside it
(keras-hub's `Task` shape)."""

import collections
import os
import re

import keras
import numpy as np
import tensorflow as tf

from keras_siamese import inference
from keras_siamese.artifacts import is_local_path, reading
from keras_siamese.atomic import atomic_file_path
from keras_siamese.data.epochs import EpochPosition, ResumeSampling
from keras_siamese.layers import L2Normalize, Pooling, Projection, token_inputs
from keras_siamese.layers.preprocessor import preprocess_batches
from keras_siamese.losses.matryoshka import check_truncate_dim, truncate_embeddings
from keras_siamese.models.global_batch import gather_global_batch, is_distributed, replica_share
from keras_siamese.models.gradient_cache import cached_call, check_mini_batch_size
from keras_siamese.models.multi_worker import MultiWorkerTraining

_RANDOM_STATE = "random_state_"  # key prefix of the saved seed-generator states
# What keras.Model's functional constructor takes besides `inputs` and `outputs`.
_MODEL_ARGUMENTS = {"inputs", "outputs", "name", "trainable"}
_NOT_SETTINGS = {"dtype", "name", "shared_object_id"}
_RESERVED_PROMPT_NAMES = ("serving_default", "tokens")  # the SavedModel's own signatures

EmbedderParts = collections.namedtuple("EmbedderParts", "encoder pooling projection normalize")


@keras.saving.register_keras_serializable(package="keras_siamese")
class SentenceEmbedder(MultiWorkerTraining, keras.Model):
    """A sentence-embedding model: a preprocessor beside a functional model on its tokens.

    The shape of keras-hub's `Task`: the `preprocessor` (strings -> token ids,
    e.g. a `keras_siamese.layers.TextPreprocessor`) is mapped over the data,
    so the model itself runs no string op and can be compiled or distributed.
    Build one with `SentenceEmbedder.from_encoder(encoder)` (tokens ->
    encoder -> pooling -> optional projection -> L2), or like a functional
    model (`inputs=`, `outputs=`, `preprocessor=`). Then:
    - `fit` / `evaluate`: a `tf.data.Dataset` of `(texts, labels)` batches
      (texts may be a tuple of text batches, one per model input), or arrays
      of texts with `y` and `batch_size`; `compile(loss=...)` takes any loss of
      `keras_siamese.losses` (a `TripletSemiHard` needs none);
    - `encode` / `predict`: a list or 1-D array of texts is embedded in
      batches of similar length and returned in order
      (`keras_siamese.inference.encode`; an empty list gives a `[0, dim]`
      array); a tuple of text arrays, one per input, or a dataset works too.
    Under a `tf.distribute` strategy the loss sees the global batch: every
    replica's labels and outputs (`keras_siamese.models.global_batch`).

    With `mini_batch_size=M`, each training step computes the batch's outputs
    M rows at a time without keeping their activations, takes the loss and its
    gradient with respect to all outputs at once (in-batch mining and ranking
    losses still see the whole batch), then recomputes each chunk under the
    tape (gradient caching, `keras_siamese.models.gradient_cache`): the
    memory of an M-row step for any batch size, for a second forward pass.
    Dropout replays the same masks in both passes.

    `save` and `save_weights` write to a temporary file and rename it into
    place, so `keras.callbacks.ModelCheckpoint` never leaves a truncated
    checkpoint behind, even when training is killed mid-write.

    `prompts` (e.g. `{"query": "query: ", "document": "passage: "}`, as
    E5 and BGE encoders need) are prefixes `encode(texts, prompt_name=...)`
    adds; the SavedModel export serves each as a signature of its name, and
    the sentence-transformers export and presets keep them.

    Args:
        preprocessor: strings -> model inputs, applied to every text input.
        mini_batch_size: `None` (the whole batch at once) or a positive integer.
        prompts: `None` or a dict of prompt name (letters, digits, `_`) -> prefix text.
        dtype: the model's dtype policy (default: Keras' global policy, e.g. `"mixed_bfloat16"`).
        Also `inputs`, `outputs`, `name`, `trainable` as for `keras.Model`;
        other keyword arguments are a TypeError.

    Example:
    >>> model = SentenceEmbedder.from_encoder(encoder)  # doctest: +SKIP
    >>> model.compile(optimizer="adam", loss=MultipleNegativesRankingLoss())  # doctest: +SKIP
    >>> model.encode(["a small dog"]).shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(self, *args, preprocessor=None, mini_batch_size=None, prompts=None, dtype=None, **kwargs):
        unknown = sorted(set(kwargs) - _MODEL_ARGUMENTS)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments: {', '.join(unknown)}.")
        super().__init__(*args, **kwargs)
        if dtype is not None:  # the policy it was built under (a functional model's config leaves it out)
            self.dtype_policy = dtype
        if isinstance(preprocessor, dict):  # from get_config
            preprocessor = self._saved_preprocessor(preprocessor)
        self.preprocessor = preprocessor
        self.mini_batch_size = check_mini_batch_size(mini_batch_size)
        self.prompts = check_prompts(prompts)

    @classmethod
    def from_encoder(cls, encoder, pooling="mean", output_units=None, hidden_units=(), normalize=True, activation="relu",
                     **kwargs):
        """An embedding model around `encoder`, on tokens, with the encoder's preprocessor.

        By default tokens -> `encoder` -> `Pooling(pooling)` -> `L2Normalize`:
        nothing random between a pretrained encoder and its embedding, so the
        model starts at the encoder's own quality and training can only move
        it from there. `output_units` adds `Projection(output_units,
        hidden_units)` before the normalisation: the Siamese ALBERT study's
        head is `output_units=64, hidden_units=(64,)` (with
        `pooling="pooled"`; `activation` is the hidden layers'), which suits an encoder trained from scratch; for
        smaller embeddings of a pretrained encoder train with
        `keras_siamese.losses.MatryoshkaLoss` and truncate instead.
        `normalize=False` leaves the embeddings unnormalised (e.g. features
        for a classifier). Pooling modes other than `"pooled"` freeze the
        encoder's unused pooler. `encoder` is a `TextEncoder`, `AlbertEncoder`
        or `HubEncoder` (anything taking its `preprocessor`'s tokens); other
        arguments go to the constructor.

        Example:
        >>> model = SentenceEmbedder.from_encoder(encoder)  # doctest: +SKIP
        >>> study = TripletSemiHard.from_encoder(encoder, "pooled", output_units=64, hidden_units=(64,))  # doctest: +SKIP
        """
        if pooling != "pooled" and hasattr(encoder, "pooler_trainable"):
            encoder.pooler_trainable = False
        inputs = token_inputs()
        embedding = Pooling(pooling, name="pooling")(encoder(inputs))
        if output_units is not None:
            embedding = Projection(output_units, hidden_units, activation=activation, name="projection")(embedding)
        elif tuple(hidden_units):
            raise ValueError(f"hidden_units={hidden_units!r} needs output_units (the projection's output size).")
        if normalize:
            embedding = L2Normalize(name="embedding")(embedding)
        return cls(inputs=inputs, outputs=embedding, preprocessor=encoder.preprocessor, **kwargs)

    @classmethod
    def from_embedding_model(cls, embedding_model, preprocessor=None, **kwargs):
        """Wraps a functional model that maps inputs to embeddings (same layers, same weights);
        `preprocessor` defaults to the model's own, if it has one.

        Example:
        >>> triplets = TripletSemiHard.from_embedding_model(SentenceEmbedder.from_encoder(encoder))  # doctest: +SKIP
        """
        return cls(
            inputs=embedding_model.input,
            outputs=embedding_model.outputs[0],
            preprocessor=preprocessor or getattr(embedding_model, "preprocessor", None),
            **kwargs,
        )

    @classmethod
    def from_preset(cls, directory, **kwargs):
        """A model from a preset `save_to_preset` wrote (bit-identical), or from a sentence-transformers
        directory: its Transformer (BERT-family or ALBERT), Pooling, Dense and Normalize modules and its
        prompts, so a model trained there continues here with the same embedding.

        Example:
        >>> model = SentenceEmbedder.from_preset("path/to/all-MiniLM-L6-v2")  # doctest: +SKIP
        """
        from keras_siamese.models.presets import load_preset

        return load_preset(cls, directory, **kwargs)

    def save_to_preset(self, directory):
        """Writes the model in keras-hub's preset layout (`keras_hub.upload_preset` publishes it) with a
        model card; `from_preset` loads it back. See `keras_siamese.models.presets.save_preset`.

        Example:
        >>> model.save_to_preset("presets/faq-minilm")  # doctest: +SKIP
        """
        from keras_siamese.models.presets import save_preset

        return save_preset(self, directory)

    def parts(self):
        """`EmbedderParts(encoder, pooling, projection or None, normalize)`: the layers `from_encoder`
        builds; a `ValueError` for a model with other layers."""
        from keras_siamese.layers import Encoder

        found = {kind: [] for kind in (Encoder, Pooling, Projection, L2Normalize)}
        for layer in self.layers:
            kind = next((kind for kind in found if isinstance(layer, kind)), None)
            if kind is not None:
                found[kind].append(layer)
            elif not isinstance(layer, keras.layers.InputLayer):
                raise ValueError(f"The layer {layer.name!r} ({type(layer).__name__}) is not one that from_encoder "
                                 "builds: an encoder, Pooling, Projection, L2Normalize.")
        if len(found[Encoder]) != 1 or len(found[Pooling]) != 1 or len(found[Projection]) > 1:
            raise ValueError("Expected one encoder, one Pooling and at most one Projection, as from_encoder builds.")
        return EmbedderParts(found[Encoder][0], found[Pooling][0], (found[Projection] or [None])[0],
                             bool(found[L2Normalize]))

    def _saved_preprocessor(self, config):
        """The preprocessor of a saved config, one object with an encoder's identical preprocessor
        (files of keras_siamese 0.1.0 named the layer holding it instead)."""
        if "preprocessor_of" in config:
            return self.get_layer(config["preprocessor_of"]).preprocessor
        preprocessor = keras.layers.deserialize(config)
        for layer in self.layers:
            own = getattr(layer, "preprocessor", None)
            if type(own) is type(preprocessor) and _settings(own) == _settings(preprocessor):
                return own  # one object, as when it was saved (and whose assets the file holds)
        return preprocessor

    def call(self, inputs, training=None, mask=None, **kwargs):
        if not training or self.mini_batch_size is None:
            return super().call(inputs, training=training, mask=mask, **kwargs)
        return cached_call(
            lambda chunk: super(SentenceEmbedder, self).call(chunk, training=True, mask=mask, **kwargs),
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

    def encode(self, texts, batch_size=64, truncate_dim=None, prompt_name=None):
        """The embeddings of `texts` (a list or 1-D array), `[len(texts), dim]` float32, in order:
        `keras_siamese.inference.encode` (batches of similar length, each text tokenised once).
        `prompt_name` prefixes every text with that prompt of `prompts`.

        Example:
        >>> model.encode(["a small dog", "to run"]).shape  # doctest: +SKIP
        (2, 384)
        >>> model.encode(["how do I pay"], prompt_name="query").shape  # doctest: +SKIP
        (1, 384)
        """
        texts = list(texts)
        if prompt_name is not None:
            prefix = self.prompt(prompt_name)
            texts = [prefix + (text.decode("utf-8") if isinstance(text, bytes) else text) for text in texts]
        return self.predict(texts, batch_size=batch_size, truncate_dim=truncate_dim)

    def prompt(self, name):
        """The prefix text of the prompt `name`; a `ValueError` naming the prompts there are."""
        if not self.prompts:
            raise ValueError(f"prompt_name {name!r} given, but this model has no prompts; build it with "
                             "prompts={'query': 'query: ', ...}.")
        if name not in self.prompts:
            raise ValueError(f"prompt_name {name!r} is not one of the model's prompts {sorted(self.prompts)}.")
        return self.prompts[name]

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

    def default_loss(self, labels, embeddings):
        """The loss of a global batch when `compile` names none: `None` here (Keras then asks
        for a loss); `TripletSemiHard` mines semi-hard triplets."""
        return None

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss (or `default_loss`) over the global batch: all replicas' rows
        under `tf.distribute`, so in-batch mining and ranking losses see every row.

        Under a strategy the loss must reduce the batch to a scalar, as every
        `keras_siamese.losses` loss does.
        """
        distributed = is_distributed()
        if distributed:
            y, y_pred, sample_weight = gather_global_batch(y, y_pred, sample_weight)
        # Keras gives the add_loss terms (regularisers) their replica share; the global batch's loss gets its here.
        additional = replica_share(keras.ops.sum(self.losses)) if self.losses else 0.0
        loss = self.default_loss(y, y_pred) if self.loss is None else None
        if loss is not None:
            return replica_share(loss) + additional
        total = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        return replica_share(total - additional) + additional if distributed else total

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
        config["prompts"] = self.prompts
        # Saved so that a reloaded mixed_float16 model compiles with loss scaling again.
        config["dtype"] = keras.dtype_policies.serialize(self.dtype_policy)
        if self.preprocessor is not None:
            config["preprocessor"] = keras.layers.serialize(self.preprocessor)
        return config


def check_prompts(prompts):
    """`prompts` as a dict of name -> prefix text (None for none); a `ValueError` naming what is wrong.

    Example:
    >>> check_prompts({"query": "query: "})
    {'query': 'query: '}
    """
    if prompts is None:
        return None
    if not isinstance(prompts, dict) or not all(isinstance(text, str) for text in prompts.values()):
        raise ValueError(f"prompts must map names to prefix texts, got {prompts!r}.")
    for name in prompts:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"prompt names must be letters, digits and '_' (they name signatures), got {name!r}.")
        if name in _RESERVED_PROMPT_NAMES:
            raise ValueError(f"{name!r} names one of the SavedModel's own signatures; name the prompt otherwise.")
    return dict(prompts)


def _settings(preprocessor):
    """A preprocessor's config without what a shared, reloaded object serialises differently
    (dtype policies, layer names Keras numbers per process, shared-object ids)."""

    def settings(value):
        if isinstance(value, dict):
            return {key: settings(item) for key, item in value.items() if key not in _NOT_SETTINGS}
        return value

    return settings(preprocessor.get_config())


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


# Pair models saved by keras_siamese 0.1.0 name this class by its old name.
keras.saving.get_custom_objects()["keras_siamese>TextTask"] = SentenceEmbedder
