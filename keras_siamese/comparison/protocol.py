"""The Siamese ALBERT study's protocol on your data: frozen, trained and siamese variants side by side.

The study fine-tuned one encoder three ways on labelled texts and compared
them on held-out texts:

- `frozen`: the encoder as it is, a classifier head trained on its pooled
  output;
- `trained`: encoder, projection and softmax classifier trained together
  with cross-entropy;
- `siamese`: encoder and projection trained with online semi-hard triplet
  mining (L2-normalised embeddings), then a classifier head trained on the
  embeddings.

Every variant starts from the same weights and trains on the same batches
(class-balanced P x K, length-bucketed). Each is scored twice: its
classifier head (accuracy, F1, ROC AUC), and its embeddings by k nearest
neighbours among the training texts (the same metrics, plus hit@k, MRR and
MAP@R).
"""

import dataclasses
import time

import keras
import numpy as np

from keras_siamese.data import class_balanced_batches, encode_labels, train_test_split_by_label
from keras_siamese.evaluation import classification_report, knn_classify, knn_scores, retrieval_metrics
from keras_siamese.layers import TextEncoder
from keras_siamese.layers.pooling import POOLING_MODES
from keras_siamese.losses.distances import check_margin
from keras_siamese.models import SentenceEmbedder, TripletSemiHard
from keras_siamese.settings import check_fraction, check_integers, check_positive_number, setting

VARIANTS = ("frozen", "trained", "siamese")


@dataclasses.dataclass
class ComparisonConfig:
    """Settings of `compare`. Defaults follow the study where it fits a CPU.

    The study: pooled output, Dense(64, relu) -> Dense(64), margin 1.0,
    batch 64, Adam 1e-5 for 25 epochs. `steps_per_epoch` x `epochs`
    class-balanced batches of `classes_per_batch` x `samples_per_class`
    texts train the `trained` and `siamese` variants alike.

    `jit_compile` (XLA) compiles the train step once per length bucket; it is
    off by default, as it did not pay on CPU (benchmarks/README.md).
    """

    output_dir: str = setting("runs/compare", "results.md/json, predictions, figures and projector files go here")
    variants: tuple = setting(VARIANTS, f"variants to train, of {', '.join(VARIANTS)}")
    test_fraction: float = setting(0.2, "fraction of each class held out for scoring")
    pooling: str = setting("pooled", "how token states become one vector per text", POOLING_MODES)
    hidden_units: tuple = setting((64,), "hidden Dense(relu) sizes of the projection")
    output_units: int = setting(64, "embedding size")
    margin: float = setting(1.0, "triplet margin of the siamese variant (the study's: tensorflow-addons' default)")
    classes_per_batch: int = setting(16, "classes in each training batch (P)")
    samples_per_class: int = setting(4, "texts of each class in a batch (K)")
    learning_rate: float = setting(1e-4, "Adam's learning rate of the encoder training")
    epochs: int = setting(4, "encoder training epochs")
    steps_per_epoch: int = setting(100, "batches per epoch")
    head_units: int = setting(64, "hidden units of the classifier head")
    head_epochs: int = setting(10, "classifier head training epochs")
    head_learning_rate: float = setting(1e-3, "Adam's learning rate of the classifier head")
    knn_k: int = setting(5, "neighbours of the k-NN classifier")
    bucket_by_length: bool = setting(True, "batch texts of similar token length together")
    jit_compile: bool = setting(False, "compile the train step with XLA")
    monitor_size: int = setting(500, "held-out texts scored by k-NN after each epoch (0: none)")
    eval_batch_size: int = setting(256, "texts per batch when embedding")
    seed: int = setting(0, "seed of the split, the batches and the initial weights")

    def check(self):
        """Raises `ValueError` for settings that cannot run."""
        unknown = [name for name in self.variants if name not in VARIANTS]
        if not self.variants or unknown:
            raise ValueError(f"variants must be a non-empty subset of {VARIANTS}, got {list(self.variants)}.")
        check_integers(
            self, ("epochs", "steps_per_epoch", "head_epochs", "head_units", "knn_k", "output_units", "eval_batch_size")
        )
        check_positive_number(self, "learning_rate")
        check_positive_number(self, "head_learning_rate")
        check_integers(self, ("classes_per_batch", "samples_per_class"), minimum=2)
        if not all(isinstance(units, int) and units >= 1 for units in self.hidden_units):
            raise ValueError(f"hidden_units must be positive integers, got {self.hidden_units!r}.")
        check_fraction(self, "test_fraction")
        check_margin(self.margin)
        check_integers(self, ("monitor_size",), minimum=0)


@dataclasses.dataclass
class VariantRun:
    """One trained variant: its models (strings in) and what it produced on the data.

    Attributes:
        name: `"frozen"`, `"trained"` or `"siamese"`.
        encoder: the variant's own copy of the encoder.
        embedding_model: a `SentenceEmbedder`: texts -> the variant's embeddings.
        classifier: a `SentenceEmbedder`: texts -> class probabilities.
        train_embeddings, test_embeddings: float32 embeddings of the split.
        test_probabilities: the classifier's `[n_test, num_classes]` output.
        history: per-epoch curves (`loss`, `monitor_knn_accuracy`, `head_loss`).
        training_seconds: wall time of the encoder training (0 for `frozen`).
        training_examples: texts seen by that training.
    """

    name: str
    encoder: object
    embedding_model: keras.Model
    classifier: keras.Model
    train_embeddings: np.ndarray
    test_embeddings: np.ndarray
    test_probabilities: np.ndarray
    history: dict
    training_seconds: float
    training_examples: int


@dataclasses.dataclass
class Comparison:
    """What `compare` returns: the split, the variant runs and their metrics.

    `metrics[variant]` holds `classifier` and `knn` (classification reports),
    `retrieval` (`retrieval_metrics` of test texts against training texts) and
    `training` (seconds, examples, examples per second).
    """

    config: ComparisonConfig
    class_names: list
    train_labels: np.ndarray
    test_labels: np.ndarray
    test_texts: list
    runs: dict
    metrics: dict


def compare(encoder, texts, labels, config=None, class_names=None, test_texts=None, test_labels=None):
    """Trains the study's variants from `encoder` on labelled texts and scores them on held-out texts.

    Args:
        encoder: a `keras_siamese.layers.TextEncoder` (e.g. `AlbertEncoder`);
            every variant trains its own copy, `encoder` is left as it is.
            Or a callable returning a fresh encoder with the starting weights.
        texts, labels: the labelled corpus (labels: integers or strings).
        config: a `ComparisonConfig`.
        class_names: names of the sorted distinct labels, for the reports.
        test_texts, test_labels: a fixed held-out set; without them a
            stratified `config.test_fraction` of the corpus is held out.

    Returns:
        A `Comparison`. Write its files with
        `keras_siamese.comparison.write_comparison`.

    Example:
    >>> encoder = AlbertEncoder.from_corpus(texts, vocabulary_size=2000)  # doctest: +SKIP
    >>> result = compare(encoder, texts, labels, ComparisonConfig(epochs=1))  # doctest: +SKIP
    >>> result.metrics["siamese"]["knn"]["accuracy"]  # doctest: +SKIP
    0.61
    """
    config = config or ComparisonConfig()
    config.check()
    keras.utils.set_random_seed(config.seed)
    if test_texts is None:
        train_texts, train_labels, test_texts, test_labels = train_test_split_by_label(
            texts, labels, config.test_fraction, config.seed
        )
    else:
        train_texts, train_labels = list(texts), np.asarray(labels)
    if config.knn_k > len(train_texts):  # checked before any training, not after
        raise ValueError(f"knn_k={config.knn_k} exceeds the {len(train_texts)} training texts.")
    train_ids, test_ids, class_names = _class_ids(train_labels, test_labels, class_names)
    first_encoder = _fresh_encoder(encoder)
    train_lengths = first_encoder.preprocessor.token_lengths(train_texts)
    data = _Data(train_texts, train_ids, train_lengths, test_texts, test_ids, len(class_names))
    monitor = _monitor_subset(data, config)

    runs = {}
    for number, name in enumerate(config.variants):
        variant_encoder = first_encoder if number == 0 else _fresh_encoder(encoder)
        print(f"[compare] {name}: training")
        runs[name] = _VARIANT_BUILDERS[name](variant_encoder, data, monitor, config)
    metrics = {name: score_run(run, train_ids, test_ids, len(class_names), config.knn_k) for name, run in runs.items()}
    return Comparison(config, class_names, train_ids, test_ids, list(test_texts), runs, metrics)


def score_run(run, train_labels, test_labels, num_classes, k):
    """The metrics of one `VariantRun` (see `Comparison`)."""
    neighbours = knn_classify(run.test_embeddings, run.train_embeddings, train_labels, k=k)
    scores = knn_scores(run.test_embeddings, run.train_embeddings, train_labels, num_classes, k=k)
    knn = classification_report(test_labels, neighbours, num_classes)
    auc = classification_report(test_labels, scores, num_classes)
    knn.update({key: auc[key] for key in ("micro_auc", "macro_auc") if key in auc})
    seconds = run.training_seconds
    return {
        "classifier": classification_report(test_labels, run.test_probabilities, num_classes),
        "knn": knn,
        "retrieval": retrieval_metrics(run.test_embeddings, test_labels, run.train_embeddings, train_labels),
        "training": {
            "seconds": seconds,
            "examples": run.training_examples,
            "examples_per_second": run.training_examples / seconds if seconds else None,
        },
    }


@dataclasses.dataclass
class _Data:
    train_texts: list
    train_ids: np.ndarray
    train_lengths: np.ndarray
    test_texts: list
    test_ids: np.ndarray
    num_classes: int


def _class_ids(train_labels, test_labels, class_names):
    """Dense ids `0..C-1` for both sides (in sorted label order) and a name per id.

    `class_names[label]` names an integer label (as the corpus loaders return
    them); string labels name themselves.
    """
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    ids, classes = encode_labels(np.concatenate([train_labels, test_labels]))
    _, ids = np.unique(ids, return_inverse=True)
    if class_names is not None and all(isinstance(value, int) for value in classes):
        if classes[0] < 0 or classes[-1] >= len(class_names):
            raise ValueError(f"class_names has {len(class_names)} names but the labels go up to {classes[-1]}.")
        names = [str(class_names[value]) for value in classes]
    else:
        names = [str(value) for value in classes]
    ids = ids.astype(np.int32)
    return ids[: len(train_labels)], ids[len(train_labels):], names


def _fresh_encoder(encoder):
    """A copy of `encoder` with the same weights, or the result of calling a factory."""
    if not isinstance(encoder, keras.layers.Layer):
        encoder = encoder()
        if not isinstance(encoder, TextEncoder):
            raise ValueError(f"the encoder factory returned a {type(encoder).__name__}, not a TextEncoder.")
        return encoder
    if not isinstance(encoder, TextEncoder):
        raise ValueError(
            f"compare needs a keras_siamese.layers.TextEncoder (tokenizer + keras-hub backbone), "
            f"got {type(encoder).__name__}."
        )
    copy = type(encoder).from_config(encoder.get_config())
    copy.set_weights(encoder.get_weights())
    return copy


def _monitor_subset(data, config):
    """A fixed sample of test queries and training texts for the per-epoch curves."""
    if not config.monitor_size:
        return None
    rng = np.random.default_rng(config.seed)
    queries = rng.permutation(len(data.test_texts))[: config.monitor_size]
    corpus = rng.permutation(len(data.train_texts))[: 4 * config.monitor_size]
    return queries, corpus


def length_bucketing(preprocessor, lengths, config):
    """Keyword arguments of `class_balanced_batches` that draw each batch from one length bucket.

    Bucket `i` holds the texts whose token count falls in `(buckets[i-1],
    buckets[i]]` of the preprocessor's length buckets, so its batches trim to
    `buckets[i]`. Empty when `config.bucket_by_length` is off or the
    preprocessor pads to a fixed length. With the same `config.seed`, a
    `ClassBalancedSampler(labels, P, K, seed, steps_per_epoch, **kwargs)`
    draws exactly the batches `compare` trains on.

    Example:
    >>> length_bucketing(preprocessor, preprocessor.token_lengths(texts), ComparisonConfig())  # doctest: +SKIP
    {'lengths': array([...]), 'bucket_boundaries': [5, 9, 13, ...]}
    """
    if not (config.bucket_by_length and preprocessor.dynamic_length):
        return {}
    return {"lengths": np.asarray(lengths), "bucket_boundaries": [b + 1 for b in preprocessor.buckets[:-1]]}


def _batches(encoder, data, config):
    """Class-balanced P x K batches of texts, from one length bucket each when configured."""
    return class_balanced_batches(
        data.train_texts,
        data.train_ids,
        config.classes_per_batch,
        config.samples_per_class,
        seed=config.seed,
        batches_per_epoch=config.steps_per_epoch,
        **length_bucketing(encoder.preprocessor, data.train_lengths, config),
    )


class _MonitorCallback(keras.callbacks.Callback):
    """Records the kNN accuracy of a fixed held-out sample after each epoch."""

    def __init__(self, embedder, data, monitor, config):
        super().__init__()
        self.embedder, self.data, self.monitor, self.config = embedder, data, monitor, config
        self.accuracy = []
        self.seconds = 0.0

    def on_epoch_end(self, epoch, logs=None):
        started = time.perf_counter()
        self.accuracy.append(_monitor_accuracy(self.embedder, self.data, self.monitor, self.config))
        self.seconds += time.perf_counter() - started


def _monitor_accuracy(embedder, data, monitor, config):
    queries, corpus = monitor
    texts = [data.test_texts[i] for i in queries] + [data.train_texts[i] for i in corpus]
    vectors = embedder.encode(texts, batch_size=config.eval_batch_size)
    k = min(config.knn_k, len(corpus))
    predicted = knn_classify(vectors[: len(queries)], vectors[len(queries):], data.train_ids[corpus], k=k)
    return float(np.mean(predicted == data.test_ids[queries]))


def _fit_encoder(model, encoder, data, monitor, config, embedder, loss=None):
    """Trains `model` on the shared batches; returns (history dict, seconds, examples)."""
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=loss,
        jit_compile=config.jit_compile,
    )
    callbacks = []
    if monitor is not None:
        callbacks.append(_MonitorCallback(embedder, data, monitor, config))
    started = time.perf_counter()
    history = model.fit(
        _batches(encoder, data, config), epochs=config.epochs, callbacks=callbacks, shuffle=False, verbose=2
    )
    seconds = time.perf_counter() - started
    curves = {"loss": [float(value) for value in history.history["loss"]]}
    if callbacks:
        curves["monitor_knn_accuracy"] = callbacks[0].accuracy
        seconds -= callbacks[0].seconds  # embedding the monitor sample is not training
    examples = config.epochs * config.steps_per_epoch * config.classes_per_batch * config.samples_per_class
    return curves, seconds, examples


def fit_classifier_head(train_features, train_labels, num_classes, config):
    """Dense(head_units, relu) -> softmax, trained on fixed features; returns (head, loss per epoch).

    The head every variant but `trained` is scored with (`config.head_units`,
    `head_epochs`, `head_learning_rate`; Adam, batch 256).

    Example:
    >>> features = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    >>> head, losses = fit_classifier_head(features, np.arange(8) % 2, 2, ComparisonConfig(head_epochs=2))
    >>> head.predict(features, verbose=0).shape, len(losses)
    ((8, 2), 2)
    """
    head = keras.Sequential(
        [
            keras.Input(shape=(train_features.shape[1],)),
            keras.layers.Dense(config.head_units, activation="relu", name="head_hidden"),
            keras.layers.Dense(num_classes, activation="softmax", name="head_output"),
        ],
        name="classifier_head",
    )
    head.compile(optimizer=keras.optimizers.Adam(config.head_learning_rate), loss="sparse_categorical_crossentropy")
    history = head.fit(train_features, train_labels, batch_size=256, epochs=config.head_epochs, verbose=0)
    return head, [float(value) for value in history.history["loss"]]


def _with_head(embedder, head, name):
    """A `SentenceEmbedder` of `embedder`'s layers followed by `head` (same weights)."""
    return SentenceEmbedder(
        inputs=embedder.input, outputs=head(embedder.outputs[0]), preprocessor=embedder.preprocessor, name=name
    )


def _run_frozen(encoder, data, monitor, config):
    encoder.trainable = False
    embedder = SentenceEmbedder.from_encoder(encoder, config.pooling, normalize=False, name="frozen_embedding")
    train_embeddings = embedder.encode(data.train_texts, batch_size=config.eval_batch_size)
    test_embeddings = embedder.encode(data.test_texts, batch_size=config.eval_batch_size)
    head, head_loss = fit_classifier_head(train_embeddings, data.train_ids, data.num_classes, config)
    return VariantRun(
        name="frozen",
        encoder=encoder,
        embedding_model=embedder,
        classifier=_with_head(embedder, head, "frozen_classifier"),
        train_embeddings=train_embeddings,
        test_embeddings=test_embeddings,
        test_probabilities=np.asarray(head.predict(test_embeddings, batch_size=1024, verbose=0)),
        history={"head_loss": head_loss},
        training_seconds=0.0,
        training_examples=0,
    )


def _run_trained(encoder, data, monitor, config):
    embedder = SentenceEmbedder.from_encoder(
        encoder, config.pooling, config.output_units, config.hidden_units, normalize=False, name="trained_embedding"
    )
    output = keras.layers.Dense(data.num_classes, activation="softmax", name="classifier_output")
    classifier = _with_head(embedder, output, "trained_classifier")
    curves, seconds, examples = _fit_encoder(
        classifier, encoder, data, monitor, config, embedder, loss="sparse_categorical_crossentropy"
    )
    test_embeddings = embedder.encode(data.test_texts, batch_size=config.eval_batch_size)
    return VariantRun(
        name="trained",
        encoder=encoder,
        embedding_model=embedder,
        classifier=classifier,
        train_embeddings=embedder.encode(data.train_texts, batch_size=config.eval_batch_size),
        test_embeddings=test_embeddings,
        test_probabilities=np.asarray(output(test_embeddings)),  # the classifier's last layer
        history=curves,
        training_seconds=seconds,
        training_examples=examples,
    )


def _run_siamese(encoder, data, monitor, config):
    model = TripletSemiHard.from_encoder(
        encoder, config.pooling, config.output_units, config.hidden_units, margin=config.margin,
        name="siamese_embedding",
    )
    curves, seconds, examples = _fit_encoder(model, encoder, data, monitor, config, model)
    train_embeddings = model.encode(data.train_texts, batch_size=config.eval_batch_size)
    test_embeddings = model.encode(data.test_texts, batch_size=config.eval_batch_size)
    head, curves["head_loss"] = fit_classifier_head(train_embeddings, data.train_ids, data.num_classes, config)
    return VariantRun(
        name="siamese",
        encoder=encoder,
        embedding_model=model,
        classifier=_with_head(model, head, "siamese_classifier"),
        train_embeddings=train_embeddings,
        test_embeddings=test_embeddings,
        test_probabilities=np.asarray(head.predict(test_embeddings, batch_size=1024, verbose=0)),
        history=curves,
        training_seconds=seconds,
        training_examples=examples,
    )


_VARIANT_BUILDERS = {"frozen": _run_frozen, "trained": _run_trained, "siamese": _run_siamese}
