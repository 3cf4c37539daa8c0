"""A Keras callback that measures retrieval quality at the end of each epoch."""

import keras
import numpy as np

from keras_siamese import inference
from keras_siamese.evaluation.retrieval import _check_ks, retrieval_metrics


class RetrievalEvaluation(keras.callbacks.Callback):
    """Adds `retrieval_metrics` of held-out data to the epoch logs, e.g. `val_hit@1`.

    At each epoch end the callback embeds `queries` (and `corpus`, if given)
    with the model being trained (texts through `keras_siamese.inference.encode`,
    other inputs through `model.predict`, or `embed_fn`), ranks the
    corpus for each query and writes every metric into `logs` under
    `prefix + name`. Later callbacks see them, so `ModelCheckpoint` and
    `EarlyStopping` can monitor them (`mode="max"`: higher is better); list
    this callback *before* them. `History` records them too.

    Without `corpus` the queries are ranked against each other, leaving each
    query out of its own ranking. Works with any model whose `predict` maps
    its inputs (texts, features) to embeddings.

    `baseline` is what training must beat: the untrained encoder's own
    embedding (`SentenceEmbedder.from_encoder(encoder, pooling)` built before
    `fit`: its pooling + L2, nothing trained added; not a model with a random
    head). It is measured once, when the callback is created (so before
    training changes the weights it shares with the trained model), kept in
    `baseline_metrics`, and printed beside every epoch's metrics.

    Args:
        queries: model inputs of the query items (e.g. an array of strings).
        query_labels: one label per query.
        corpus: model inputs of the corpus items; default: the queries.
        corpus_labels: one label per corpus item; required with `corpus`.
        ks: cut-offs for `hit@k`/`recall@k`.
        prefix: prepended to each metric name in the logs.
        embed_fn: callable `inputs -> [n, d] embeddings`; default
            `model.predict(inputs, batch_size=batch_size, verbose=0)`.
        batch_size: batch size of the default `embed_fn`.
        verbose: 1 prints the metrics after each epoch.
        baseline: optional model (or `embed_fn`-style callable) to measure once, at creation.

    Example:
    >>> untrained = SentenceEmbedder.from_encoder(encoder)  # doctest: +SKIP
    >>> evaluation = RetrievalEvaluation(val_texts, val_labels, baseline=untrained, verbose=1)  # doctest: +SKIP
    >>> checkpoint = keras.callbacks.ModelCheckpoint(
    ...     "best.keras", monitor="val_hit@1", mode="max", save_best_only=True)  # doctest: +SKIP
    >>> model.fit(batches, epochs=5, callbacks=[evaluation, checkpoint])  # doctest: +SKIP
    """

    def __init__(
        self,
        queries,
        query_labels,
        corpus=None,
        corpus_labels=None,
        ks=(1, 5),
        prefix="val_",
        embed_fn=None,
        batch_size=256,
        verbose=0,
        baseline=None,
    ):
        super().__init__()
        if (corpus is None) != (corpus_labels is None):
            raise ValueError("Give corpus and corpus_labels together, or neither.")
        if embed_fn is not None and not callable(embed_fn):
            raise ValueError(f"embed_fn must be callable, got {type(embed_fn).__name__}.")
        self.queries = queries
        self.query_labels = _check_labels(query_labels, queries, "query_labels", "queries")
        self.corpus = corpus
        self.corpus_labels = None
        if corpus_labels is not None:
            self.corpus_labels = _check_labels(corpus_labels, corpus, "corpus_labels", "corpus items")
        self.ks = _check_ks(ks)
        self.prefix = prefix
        self.embed_fn = embed_fn
        self.batch_size = batch_size
        self.verbose = verbose
        self.baseline_metrics = None if baseline is None else self.evaluate(baseline)

    def on_epoch_end(self, epoch, logs=None):
        metrics = self.evaluate()
        if logs is not None:
            logs.update(metrics)
        if self.verbose:
            print(f"Epoch {epoch + 1}: {self.describe(metrics)}")

    def describe(self, metrics):
        """One line of `metrics` (as `evaluate` returns them; recall@k, equal to hit@k, left out),
        each beside the baseline's."""
        shown = []
        for name, value in metrics.items():
            if "recall@" in name and name.replace("recall@", "hit@") in metrics:
                continue  # the same value as hit@k, by definition
            if self.baseline_metrics is None:
                shown.append(f"{name} {value:.4f}")
            else:
                base = self.baseline_metrics[name]
                shown.append(f"{name} {value:.4f} (untrained encoder {base:.4f})")
        return ", ".join(shown)

    def evaluate(self, model=None):
        """Embeds the data with `model` (default: the model being trained); returns
        `{prefix + metric name: value}`."""
        embed = self._embedder(model)
        query_embeddings = embed(self.queries)
        if self.corpus is None:
            metrics = retrieval_metrics(
                query_embeddings, self.query_labels, query_embeddings, self.query_labels,
                ks=self.ks, exclude_self=True,
            )
        else:
            metrics = retrieval_metrics(
                query_embeddings, self.query_labels, embed(self.corpus), self.corpus_labels, ks=self.ks
            )
        return {self.prefix + name: value for name, value in metrics.items()}

    def _embedder(self, model):
        """inputs -> embeddings of `model`: a Keras model, or a callable as `embed_fn` (default:
        `embed_fn`, else the model being trained)."""
        if model is None and self.embed_fn is not None:
            return lambda inputs: keras.ops.convert_to_numpy(self.embed_fn(inputs))
        model = self.model if model is None else model
        if not isinstance(model, keras.layers.Layer) and callable(model):
            return lambda inputs: keras.ops.convert_to_numpy(model(inputs))

        def embed(inputs):
            if inference.is_texts(inputs):
                return inference.encode(model, list(inputs), batch_size=self.batch_size)
            return model.predict(inputs, batch_size=self.batch_size, verbose=0)

        return embed


def _check_labels(labels, inputs, name, inputs_name):
    """`labels` as a 1-D array, one per item of `inputs` where their number is known (texts, arrays)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D, one label per item, got shape {labels.shape}.")
    known = inference.is_texts(inputs) or (isinstance(inputs, np.ndarray) and inputs.ndim >= 1)
    if known and len(inputs) != len(labels):
        raise ValueError(f"{name} has {len(labels)} labels for {len(inputs)} {inputs_name}.")
    return labels
