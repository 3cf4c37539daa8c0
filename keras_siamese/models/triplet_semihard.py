"""A Keras model whose default loss is online semi-hard triplet mining."""

import keras

from keras_siamese.layers import L2Normalize, Pooling, Projection, token_inputs
from keras_siamese.losses import semihard_triplet_terms
from keras_siamese.losses.distances import check_distance, check_margin
from keras_siamese.models.global_batch import gather_global_batch, replica_share
from keras_siamese.models.text_task import TextTask


@keras.saving.register_keras_serializable(package="keras_siamese")
class TripletSemiHard(TextTask):
    """An embedding model that trains with in-batch semi-hard triplet mining.

    `TripletSemiHard.from_encoder(encoder)` builds it on tokens:
    `encoder` -> `Pooling` -> (an optional `Projection`) -> `L2Normalize`,
    with the encoder's `preprocessor`. As a `TextTask` it takes texts in `fit`,
    `evaluate` and `predict`: the preprocessor is mapped over the `tf.data`
    pipeline (so the train step runs no string op), and `predict` on a list
    of texts embeds them in batches of similar length, in the caller's
    order. Build it like a functional model too (`inputs=`, `outputs=`
    giving the embeddings, optional `preprocessor=`), or from an existing
    embedding model with
    `TripletSemiHard.from_embedding_model(model)`. `compile(optimizer=...)` is
    enough: with no `loss`, training minimises
    `keras_siamese.losses.triplet_semihard_loss(labels, embeddings, margin,
    distance)` where the dataset yields `(texts, labels)` batches (use
    `keras_siamese.data.class_balanced_batches` so every batch has positives).
    Passing `loss=` to `compile` trains with that loss instead (and reports
    only it): e.g. `keras_siamese.losses.TripletBatchHardLoss()`.

    Besides `loss`, fit and evaluate report `active_triplets` (fraction of
    anchor-positive pairs whose triplet still violates the margin) and
    `positive_distance` / `negative_distance` (mean distance from anchors to
    their positives and to their mined negatives). `predict` returns the
    embeddings.

    `mini_batch_size=M` caches gradients (see `TextTask`): the batch is
    embedded M texts at a time, mined whole, and back-propagated chunk by
    chunk, so batches of thousands of texts fit in the memory of M.

    `save` and `save_weights` write to a temporary file and rename it into
    place, so `keras.callbacks.ModelCheckpoint` never leaves a truncated
    checkpoint behind, even when training is killed mid-write.

    Args:
        margin: the triplet margin.
        distance: `"L2"`, `"squared-L2"` or `"angular"` (a callable works for
            training but is not serialised).
        All other arguments go to `TextTask` (`preprocessor=`) and `keras.Model`.

    Example:
    >>> model = TripletSemiHard.from_encoder(encoder, pooling="mean")  # doctest: +SKIP
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-4))  # doctest: +SKIP
    >>> model.fit(class_balanced_batches(texts, labels), epochs=2)  # doctest: +SKIP
    >>> model.predict(["a small dog"]).shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(self, *args, margin=1.0, distance="L2", **kwargs):
        check_margin(margin)
        check_distance(distance)
        super().__init__(*args, **kwargs)
        self.margin = margin
        self.distance = distance
        self.active_triplets_tracker = keras.metrics.Mean(name="active_triplets")
        self.positive_distance_tracker = keras.metrics.Mean(name="positive_distance")
        self.negative_distance_tracker = keras.metrics.Mean(name="negative_distance")

    @classmethod
    def from_encoder(
        cls,
        encoder,
        pooling="mean",
        output_units=None,
        hidden_units=(),
        margin=0.5,
        distance="L2",
        **kwargs,
    ):
        """An embedding model around `encoder`, on tokens, with the encoder's preprocessor.

        By default tokens -> `encoder` -> `Pooling(pooling)` -> `L2Normalize`:
        nothing random between a pretrained encoder and its embedding, so the
        model starts at the encoder's own quality and training can only move
        it from there (a random head starts far below it; benchmarks/README.md,
        fine-tuning quality). `output_units` adds
        `Projection(output_units, hidden_units)` before the normalisation:
        the Siamese ALBERT study's head is `output_units=64,
        hidden_units=(64,)` (with `pooling="pooled"`), which suits an encoder
        trained from scratch; for smaller embeddings of a pretrained encoder
        train with `keras_siamese.losses.MatryoshkaLoss` and truncate instead.
        Mean pooling is the default: the pooling sentence encoders such as
        MiniLM were trained with, and the one that trained steadily from
        scratch. The margin defaults to 0.5 (not the class's 1.0, TFA's): on
        unit vectors L2 distances lie in [0, 2], and fine-tuning MiniLM measured
        better at 0.5 than at 1.0 (benchmarks/README.md); the distance stays L2,
        the loss tensorflow-addons users know. Pooling modes other than `"pooled"` freeze the encoder's
        unused pooler. `encoder` is a `TextEncoder`, `AlbertEncoder` or
        `HubEncoder` (anything taking its `preprocessor`'s tokens).

        Example:
        >>> model = TripletSemiHard.from_encoder(encoder)  # doctest: +SKIP
        >>> study = TripletSemiHard.from_encoder(encoder, "pooled", output_units=64, hidden_units=(64,))  # doctest: +SKIP
        """
        if pooling != "pooled" and hasattr(encoder, "pooler_trainable"):
            encoder.pooler_trainable = False
        inputs = token_inputs()
        embedding = Pooling(pooling, name="pooling")(encoder(inputs))
        if output_units is not None:
            embedding = Projection(output_units, hidden_units, name="projection")(embedding)
        elif tuple(hidden_units):
            raise ValueError(f"hidden_units={hidden_units!r} needs output_units (the projection's output size).")
        embedding = L2Normalize(name="embedding")(embedding)
        return cls(
            inputs=inputs, outputs=embedding, preprocessor=encoder.preprocessor, margin=margin,
            distance=distance, **kwargs,
        )

    @classmethod
    def from_embedding_model(cls, embedding_model, preprocessor=None, margin=1.0, distance="L2", **kwargs):
        """Wraps a functional model that maps inputs to embeddings (same layers, same weights)."""
        return cls(
            inputs=embedding_model.input,
            outputs=embedding_model.outputs[0],
            preprocessor=preprocessor,
            margin=margin,
            distance=distance,
            **kwargs,
        )

    @property
    def metrics(self):
        metrics = super().metrics
        if self.loss is None:
            return metrics
        # A compiled loss replaces the mining, so its statistics are not computed.
        mining = (self.active_triplets_tracker, self.positive_distance_tracker, self.negative_distance_tracker)
        return [metric for metric in metrics if all(metric is not tracker for tracker in mining)]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self.loss is not None:
            return super().compute_loss(x, y, y_pred, sample_weight, training)
        if y is None:
            raise ValueError(
                "TripletSemiHard trains on (inputs, labels) batches; the dataset "
                "yielded no labels."
            )
        y, y_pred = gather_global_batch(y, keras.ops.cast(y_pred, "float32"))  # float32 loss in mixed precision
        terms = semihard_triplet_terms(y, y_pred, margin=self.margin, distance=self.distance)
        self.active_triplets_tracker.update_state(terms.active_fraction)
        self.positive_distance_tracker.update_state(terms.mean_positive_distance)
        self.negative_distance_tracker.update_state(terms.mean_negative_distance)
        loss = keras.ops.cast(terms.loss, "float32")
        if self.losses:
            loss = loss + keras.ops.sum(self.losses)
        return replica_share(loss)

    def get_config(self):
        config = super().get_config()
        config["margin"] = self.margin
        if isinstance(self.distance, str):
            config["distance"] = self.distance
        return config
