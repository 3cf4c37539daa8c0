"""`TripletSemiHard`: a `SentenceEmbedder` whose default loss is online semi-hard triplet mining."""

import keras

from keras_siamese.losses import semihard_triplet_terms
from keras_siamese.losses.distances import check_distance, check_margin
from keras_siamese.models.sentence_embedder import SentenceEmbedder

# On unit vectors L2 distances lie in [0, 2]: fine-tuning MiniLM and training the from-scratch
# ALBERT measured better at 0.5 than at tensorflow-addons' 1.0 (benchmarks/README.md).
MARGIN = 0.5


@keras.saving.register_keras_serializable(package="keras_siamese")
class TripletSemiHard(SentenceEmbedder):
    """A `SentenceEmbedder` that trains with in-batch semi-hard triplet mining.

    `compile(optimizer=...)` is enough: with no `loss`, training minimises
    `keras_siamese.losses.triplet_semihard_loss(labels, embeddings, margin,
    distance)` (tensorflow-addons' `TripletSemiHardLoss`) over `(texts,
    labels)` batches; use `keras_siamese.data.class_balanced_batches` so every
    batch has positives. `fit` and `evaluate` then also report
    `active_triplets` (fraction of anchor-positive pairs whose triplet still
    violates the margin) and `positive_distance` / `negative_distance` (mean
    distance from anchors to their positives and to their mined negatives).
    Passing `loss=` to `compile` trains with that loss instead (and reports
    only it), e.g. `keras_siamese.losses.TripletBatchHardLoss()`.

    Build it as any `SentenceEmbedder`: `TripletSemiHard.from_encoder(encoder)`,
    `TripletSemiHard.from_embedding_model(model)`, or `inputs=`, `outputs=`,
    `preprocessor=`.

    Args:
        margin: the triplet margin (default `MARGIN`, 0.5: embeddings are unit vectors).
        distance: `"L2"`, `"squared-L2"` or `"angular"` (a callable works for
            training but is not serialised).
        All other arguments go to `SentenceEmbedder`.

    Example:
    >>> model = TripletSemiHard.from_encoder(encoder, pooling="mean")  # doctest: +SKIP
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-4))  # doctest: +SKIP
    >>> model.fit(class_balanced_batches(texts, labels), epochs=2)  # doctest: +SKIP
    >>> model.predict(["a small dog"]).shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(self, *args, margin=MARGIN, distance="L2", **kwargs):
        check_margin(margin)
        check_distance(distance)
        super().__init__(*args, **kwargs)
        self.margin = margin
        self.distance = distance
        self.active_triplets_tracker = keras.metrics.Mean(name="active_triplets")
        self.positive_distance_tracker = keras.metrics.Mean(name="positive_distance")
        self.negative_distance_tracker = keras.metrics.Mean(name="negative_distance")

    @property
    def metrics(self):
        metrics = super().metrics
        if self.loss is None:
            return metrics
        # A compiled loss replaces the mining, so its statistics are not computed.
        mining = (self.active_triplets_tracker, self.positive_distance_tracker, self.negative_distance_tracker)
        return [metric for metric in metrics if all(metric is not tracker for tracker in mining)]

    def default_loss(self, labels, embeddings):
        """The semi-hard triplet loss of the (global) batch, in float32 under mixed precision."""
        if labels is None:
            raise ValueError("TripletSemiHard trains on (inputs, labels) batches; the dataset yielded no labels.")
        terms = semihard_triplet_terms(labels, keras.ops.cast(embeddings, "float32"), self.margin, self.distance)
        self.active_triplets_tracker.update_state(terms.active_fraction)
        self.positive_distance_tracker.update_state(terms.mean_positive_distance)
        self.negative_distance_tracker.update_state(terms.mean_negative_distance)
        return keras.ops.cast(terms.loss, "float32")

    def get_config(self):
        config = super().get_config()
        config["margin"] = self.margin
        if isinstance(self.distance, str):
            config["distance"] = self.distance
        return config
