"""Keras callbacks that measure held-out quality at the end of each epoch: retrieval by label,
information retrieval, and the correlation of scored pairs."""

import keras
import numpy as np

from keras_siamese import inference
from keras_siamese.checks import check_ks
from keras_siamese.evaluation.correlation import _check_scores, embedding_correlation
from keras_siamese.evaluation.information_retrieval import check_relevant, information_retrieval_metrics
from keras_siamese.evaluation.retrieval import retrieval_metrics


class _EmbeddingEvaluation(keras.callbacks.Callback):
    """What the evaluation callbacks share: at each epoch end, embed held-out data with the model
    being trained, write the metrics into the logs and print them beside the baseline's.

    A subclass sets its data, writes `_measure(embed)` (`{metric name: value}`
    of the embeddings `embed(inputs)` gives) and then calls this `__init__`,
    which measures `baseline` once.
    """

    def __init__(self, prefix, embed_fn, batch_size, verbose, baseline):
        super().__init__()
        if embed_fn is not None and not callable(embed_fn):
            raise ValueError(f"embed_fn must be callable, got {type(embed_fn).__name__}.")
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
        """One line of `metrics` (as `evaluate` returns them), each beside the baseline's."""
        shown = []
        for name, value in metrics.items():
            if self.baseline_metrics is None:
                shown.append(f"{name} {value:.4f}")
            else:
                base = self.baseline_metrics[name]
                shown.append(f"{name} {value:.4f} (untrained encoder {base:.4f})")
        return ", ".join(shown)

    def evaluate(self, model=None):
        """Embeds the data with `model` (default: the model being trained); returns
        `{prefix + metric name: value}`."""
        metrics = self._measure(self._embedder(model))
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


class RetrievalEvaluation(_EmbeddingEvaluation):
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
        ks: cut-offs for `hit@k`.
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
        if (corpus is None) != (corpus_labels is None):
            raise ValueError("Give corpus and corpus_labels together, or neither.")
        self.queries = queries
        self.query_labels = _check_labels(query_labels, queries, "query_labels", "queries")
        self.corpus = corpus
        self.corpus_labels = None
        if corpus_labels is not None:
            self.corpus_labels = _check_labels(corpus_labels, corpus, "corpus_labels", "corpus items")
        self.ks = check_ks(ks)
        super().__init__(prefix, embed_fn, batch_size, verbose, baseline)

    def _measure(self, embed):
        query_embeddings = embed(self.queries)
        if self.corpus is None:
            return retrieval_metrics(
                query_embeddings, self.query_labels, query_embeddings, self.query_labels,
                ks=self.ks, exclude_self=True,
            )
        return retrieval_metrics(query_embeddings, self.query_labels, embed(self.corpus), self.corpus_labels, ks=self.ks)


class InformationRetrievalEvaluation(_EmbeddingEvaluation):
    """Adds `information_retrieval_metrics` of held-out queries to the epoch logs, e.g. `val_ndcg@10`.

    At each epoch end the callback embeds `queries` and `corpus` with the
    model being trained (texts through `keras_siamese.inference.encode`,
    other inputs through `model.predict`, or `embed_fn`), ranks the corpus
    for each query and writes every metric into `logs` under `prefix + name`
    (`accuracy@k`, `precision@k`, `recall@k`, `mrr@k`, `ndcg@k`, `map@k`).
    List it before `ModelCheckpoint` and `EarlyStopping` to monitor one of
    them (`mode="max"`). `baseline` is measured once, at creation, and
    printed beside every epoch's metrics, as in `RetrievalEvaluation`.

    Args:
        queries: model inputs of the queries (e.g. an array of strings).
        corpus: model inputs of the corpus documents.
        relevant: one collection per query of the corpus positions relevant
            to it; every query needs at least one.
        ks: cut-offs of every metric.
        prefix: prepended to each metric name in the logs.
        embed_fn: callable `inputs -> [n, d] embeddings`; default
            `model.predict(inputs, batch_size=batch_size, verbose=0)`.
        batch_size: batch size of the default `embed_fn`.
        verbose: 1 prints the metrics after each epoch.
        baseline: optional model (or `embed_fn`-style callable) to measure once, at creation.

    Example:
    >>> evaluation = InformationRetrievalEvaluation(
    ...     questions, passages, relevant, baseline=untrained, verbose=1)  # doctest: +SKIP
    >>> checkpoint = keras.callbacks.ModelCheckpoint(
    ...     "best.keras", monitor="val_ndcg@10", mode="max", save_best_only=True)  # doctest: +SKIP
    >>> model.fit(batches, epochs=5, callbacks=[evaluation, checkpoint])  # doctest: +SKIP
    """

    def __init__(
        self,
        queries,
        corpus,
        relevant,
        ks=(1, 3, 5, 10),
        prefix="val_",
        embed_fn=None,
        batch_size=256,
        verbose=0,
        baseline=None,
    ):
        sizes = _known_length(queries), _known_length(corpus)
        if None not in sizes:
            check_relevant(relevant, *sizes)
        self.queries, self.corpus, self.relevant = queries, corpus, relevant
        self.ks = check_ks(ks)
        super().__init__(prefix, embed_fn, batch_size, verbose, baseline)

    def _measure(self, embed):
        return information_retrieval_metrics(embed(self.queries), embed(self.corpus), self.relevant, ks=self.ks)


class PairSimilarityEvaluation(_EmbeddingEvaluation):
    """Adds the Spearman and Pearson correlation of held-out pairs' cosines with their scores to the
    epoch logs (`val_spearman`, `val_pearson`): the STS protocol, as
    `keras_siamese.evaluation.pair_similarity_correlation`.

    At each epoch end the callback embeds both texts of every pair with the
    model being trained; `baseline` is measured once, at creation, and
    printed beside every epoch's values, as in `RetrievalEvaluation`.

    Args:
        texts_a, texts_b: the pairs' texts, one list each.
        scores: a similarity score per pair (any scale; e.g. STS 0-5, or 0/1 duplicates).
        prefix, embed_fn, batch_size, verbose, baseline: as `InformationRetrievalEvaluation`.

    Example:
    >>> evaluation = PairSimilarityEvaluation(first, second, scores, baseline=untrained, verbose=1)  # doctest: +SKIP
    >>> model.fit(batches, epochs=3, callbacks=[evaluation])  # doctest: +SKIP
    """

    def __init__(self, texts_a, texts_b, scores, prefix="val_", embed_fn=None, batch_size=256, verbose=0,
                 baseline=None):
        self.scores = _check_scores(scores, "scores")
        if not len(texts_a) == len(texts_b) == len(self.scores):
            raise ValueError(
                f"texts_a, texts_b and scores must have one entry per pair, got {len(texts_a)}, {len(texts_b)} "
                f"and {len(self.scores)}."
            )
        self.texts_a, self.texts_b = texts_a, texts_b
        super().__init__(prefix, embed_fn, batch_size, verbose, baseline)

    def _measure(self, embed):
        return embedding_correlation(embed(self.texts_a), embed(self.texts_b), self.scores)


def _check_labels(labels, inputs, name, inputs_name):
    """`labels` as a 1-D array, one per item of `inputs` where their number is known (texts, arrays)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D, one label per item, got shape {labels.shape}.")
    count = _known_length(inputs)
    if count is not None and count != len(labels):
        raise ValueError(f"{name} has {len(labels)} labels for {len(inputs)} {inputs_name}.")
    return labels


def _known_length(inputs):
    """The number of items in `inputs` where it is known (texts, arrays), else None."""
    if inference.is_texts(inputs) or (isinstance(inputs, np.ndarray) and inputs.ndim >= 1):
        return len(inputs)
    return None
