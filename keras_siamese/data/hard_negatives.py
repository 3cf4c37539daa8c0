"""Hard negatives mined with a model: for each anchor-positive pair, the most similar texts
of other labels, skipping those that score too close to the positive."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from keras_siamese.checks import check_integer, is_integer, is_number
from keras_siamese.data.epochs import epoch_dataset
from keras_siamese.data.labels import check_corpus
from keras_siamese.data.rows import PAIRS, ROWS_WITH_NEGATIVES, TextRows
from keras_siamese.data.sampling import cycled_permutation, epoch_rng, group_by_class

_QUERIES_PER_SEARCH = 1024
_SCORES_PER_SEARCH = 2**22  # queries x neighbours held at once


class HardNegatives:
    """Anchor-positive rows of a labelled corpus, each with `num_negatives` mined hard negatives.

    Made by `mine_hard_negatives`; `anchors`, `positives` (int64 `[rows]`) and
    `negatives` (int64 `[rows, num_negatives]`) are positions in `texts`.
    `dataset()` feeds `pair_model(..., num_texts=2 + num_negatives)` with
    `MultipleNegativesRankingLoss`; `triplet_dataset()` feeds the batch-mining
    triplet losses (`TripletSemiHard`) with every row's texts and labels.
    `refresh(model)` mines again with the same settings (see
    `HardNegativeRefresh`); datasets made before read the new negatives from
    their next epoch on.
    """

    def __init__(self, texts, labels, settings):
        self.texts, self.labels, self._settings = texts, labels, settings
        self._texts_tensor = tf.constant(texts, tf.string)
        self._pairs = _anchor_positive_pairs(texts, labels, settings["seed"])
        self.anchors = self.positives = self.negatives = None
        self._largest_batch = 1  # of the datasets made so far: a refresh must leave that many labels

    @property
    def num_negatives(self):
        return self._settings["num_negatives"]

    def __len__(self):
        return len(self.anchors)

    def refresh(self, model):
        """Mines the negatives again with `model` (the anchor-positive pairs stay); returns self."""
        anchors, positives, text_ids = self._pairs
        negatives, found = _mine(model, self.texts, self.labels, anchors, positives, text_ids, **self._settings)
        labels_left = len(np.unique(self.labels[anchors[found]]))
        if labels_left < self._largest_batch:
            raise ValueError(
                f"Mining again left anchors of {labels_left} labels, fewer than the batch size "
                f"{self._largest_batch} of a dataset in use; widen rank_range or lower relative_margin."
            )
        self.anchors, self.positives, self.negatives = anchors[found], positives[found], negatives[found]
        return self

    def dataset(self, batch_size=32, seed=0, batches_per_epoch=None):
        """`((anchor, positive, negative_1, ..., negative_n), zeros)` batches of `tf.string [batch_size]`.

        No two rows of a batch share an anchor label, so every other row's
        positive is a true negative for `MultipleNegativesRankingLoss` (another
        row's mined negatives may still share an anchor's label).
        Reproducible per (seed, epoch), like the other batch generators.

        Example:
        >>> mined = mine_hard_negatives(lambda t: tf.one_hot(tf.strings.length(t), 8),
        ...     ["a", "b", "ab", "cd", "abc", "bcd"], [0, 0, 1, 1, 2, 2], rank_range=(0, 4))
        >>> (anchor, positive, negative), _ = next(iter(mined.dataset(batch_size=2)))
        >>> anchor.shape.as_list()
        [2]
        """
        batches_per_epoch, columns = self._batches_per_epoch(batch_size, batches_per_epoch), 2 + self.num_negatives
        seed = check_integer(seed, "seed", minimum=0)

        def gather(rows):
            return tuple(tf.unstack(tf.gather(self._texts_tensor, rows), axis=1)), tf.zeros([batch_size])

        return epoch_dataset(
            lambda epoch: iter(self._epoch_rows(batch_size, seed, batches_per_epoch, epoch)),
            batches_per_epoch,
            tf.TensorSpec([batch_size, columns], tf.int64),
            gather=gather,
        )

    def triplet_dataset(self, batch_size=16, seed=0, batches_per_epoch=None):
        """`(texts, labels)` batches of `batch_size * (2 + num_negatives)` texts for the triplet losses.

        Each row's anchor, positive and negatives with their labels, rows of distinct
        anchor labels: in-batch mining (`TripletSemiHard`) sees every anchor's hard
        negatives.
        """
        batches_per_epoch = self._batches_per_epoch(batch_size, batches_per_epoch)
        seed = check_integer(seed, "seed", minimum=0)
        labels = tf.constant(self.labels, tf.int32)

        def gather(rows):
            flat = tf.reshape(rows, [-1])
            return tf.gather(self._texts_tensor, flat), tf.gather(labels, flat)

        return epoch_dataset(
            lambda epoch: iter(self._epoch_rows(batch_size, seed, batches_per_epoch, epoch)),
            batches_per_epoch,
            tf.TensorSpec([batch_size, 2 + self.num_negatives], tf.int64),
            gather=gather,
        )

    def _batches_per_epoch(self, batch_size, batches_per_epoch):
        batch_size = check_integer(batch_size, "batch_size")
        distinct = len(np.unique(self.labels[self.anchors]))
        if batch_size > distinct:
            raise ValueError(
                f"batch_size={batch_size} exceeds the {distinct} anchor labels; a batch holds each label once."
            )
        self._largest_batch = max(self._largest_batch, batch_size)
        if batches_per_epoch is None:
            return max(1, len(self) // batch_size)
        return check_integer(batches_per_epoch, "batches_per_epoch")

    def _epoch_rows(self, batch_size, seed, batches_per_epoch, epoch):
        """`[batches, batch_size, 2 + n]` text positions; a batch's rows have distinct anchor labels."""
        rng = epoch_rng(seed, epoch)
        rows = np.concatenate([self.anchors[:, None], self.positives[:, None], self.negatives], axis=1)
        classes, members = group_by_class(self.labels[self.anchors])
        chosen = cycled_permutation(rng, np.arange(len(classes)), batches_per_epoch * batch_size, block=batch_size)
        queues = [iter(cycled_permutation(rng, m, int(np.sum(chosen == c)))) for c, m in enumerate(members)]
        picked = np.array([next(queues[c]) for c in chosen], np.int64)
        return rows[picked].reshape(batches_per_epoch, batch_size, -1)


class HardNegativeRefresh(keras.callbacks.Callback):
    """Mines `hard_negatives` again with `model` every `every_epochs` epochs of `fit`.

    Pass the embedding model (the one `pair_model` wraps): it is the one that
    encodes single texts.

    Example:
    >>> refresh = HardNegativeRefresh(mined, model, every_epochs=2)  # doctest: +SKIP
    >>> pairs.fit(mined.dataset(32), epochs=6, callbacks=[refresh])  # doctest: +SKIP
    """

    def __init__(self, hard_negatives, model, every_epochs=1):
        super().__init__()
        if not isinstance(hard_negatives, HardNegatives):
            raise ValueError(f"hard_negatives must come from mine_hard_negatives, got {type(hard_negatives).__name__}.")
        if not callable(model):
            raise ValueError(f"model must be the embedding model to mine with, got {model!r}.")
        self.hard_negatives, self.embedding_model = hard_negatives, model
        self.every_epochs = check_integer(every_epochs, "every_epochs")

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs == 0:
            self.hard_negatives.refresh(self.embedding_model)


def mine_hard_negatives(
    model,
    texts,
    labels,
    num_negatives=1,
    rank_range=(0, 30),
    relative_margin=0.05,
    batch_size=256,
    backend="auto",
    seed=0,
    verbose=0,
):
    """Gives each anchor-positive pair of a labelled corpus `num_negatives` hard negatives.

    Every text of a label with two or more distinct texts is an anchor; its
    positive is another text of that label, drawn with `seed`. The corpus is
    embedded once with `keras_siamese.inference.encode` and searched exactly
    (or with faiss, `backend` as in `EmbeddingIndex`), `batch_size` texts at a
    time. A candidate is a text of another label, ranked by cosine to the
    anchor: rank 0 is the most similar one. The negatives are the best
    candidates with rank in `[start, stop)` of `rank_range` that also score at
    most `cos(anchor, positive) - relative_margin * |cos(anchor, positive)|`
    (positive-aware mining: a candidate that scores as high as the positive
    is likely mislabelled, a false negative). Texts equal to the anchor or
    positive, and second copies of a text, are skipped (they still hold their
    rank), and so are anchors left with fewer than `num_negatives` candidates. Labels with a single text are candidates,
    never anchors. Nothing is written to disk.

    Args:
        model: what `inference.encode` takes: a `SentenceEmbedder` or any model mapping strings to embeddings.
        texts, labels: the corpus (labels as in `class_balanced_batches`).
        num_negatives: negatives per anchor, >= 1.
        rank_range: `(start, stop)` window of candidate ranks, `0 <= start`, `stop - start >= num_negatives`.
        relative_margin: in [0, 1), or None to keep candidates however close to the positive.
        batch_size: texts encoded, and anchors searched, at once.
        backend: `"exact"`, `"faiss"` or `"auto"` (faiss when installed).
        seed: draws the positives and, in `dataset()`, the batches.
        verbose: 1 shows a progress bar over the anchors.

    Returns:
        A `HardNegatives`.

    Example:
    >>> mined = mine_hard_negatives(lambda t: tf.one_hot(tf.strings.length(t), 8),
    ...     ["a", "b", "ab", "cd", "abc", "bcd"], [0, 0, 1, 1, 2, 2], rank_range=(0, 4))
    >>> mined.negatives.shape, bool(all(mined.labels[mined.negatives[:, 0]] != mined.labels[mined.anchors]))
    ((6, 1), True)
    """
    texts, ids, classes = check_corpus(texts, labels)
    settings = _check_settings(num_negatives, rank_range, relative_margin, batch_size, backend, seed, verbose)
    if len(classes) < 2:
        raise ValueError(f"Mining negatives needs texts of at least 2 labels, got {len(classes)}: {classes!r}.")
    if not callable(model):
        raise ValueError(f"model must be a Keras model or callable mapping texts to embeddings, got {model!r}.")
    mined = HardNegatives(texts, ids, settings)
    if not len(mined._pairs[0]):
        raise ValueError(
            "Every label has a single distinct text, so no anchor has a positive: "
            f"labels {classes[:10]!r}{' ...' if len(classes) > 10 else ''}."
        )
    return mined.refresh(model)


def _check_settings(num_negatives, rank_range, relative_margin, batch_size, backend, seed, verbose):
    num_negatives = check_integer(num_negatives, "num_negatives")
    window = tuple(rank_range) if hasattr(rank_range, "__iter__") and not isinstance(rank_range, str) else ()
    if len(window) != 2 or not all(is_integer(r) for r in window) or not 0 <= window[0] < window[1]:
        raise ValueError(f"rank_range must be (start, stop) integers with 0 <= start < stop, got {rank_range!r}.")
    if window[1] - window[0] < num_negatives:
        raise ValueError(
            f"rank_range={rank_range!r} holds {window[1] - window[0]} ranks, fewer than "
            f"num_negatives={num_negatives}: it leaves no room for the negatives."
        )
    if relative_margin is not None and not (is_number(relative_margin) and 0 <= relative_margin < 1):
        raise ValueError(f"relative_margin must be in [0, 1) or None, got {relative_margin!r}.")
    if backend not in ("auto", "exact", "faiss"):
        raise ValueError(f"backend must be 'auto', 'exact' or 'faiss', got {backend!r}.")
    return {
        "num_negatives": num_negatives,
        "rank_range": (int(window[0]), int(window[1])),
        "relative_margin": None if relative_margin is None else float(relative_margin),
        "batch_size": check_integer(batch_size, "batch_size"),
        "backend": backend,
        "seed": check_integer(seed, "seed", minimum=0),
        "verbose": check_integer(verbose, "verbose", minimum=0),
    }


def _mine(model, texts, ids, anchors, positives, text_ids, num_negatives, rank_range, relative_margin,
          batch_size, backend, seed, verbose):
    """`(negatives [rows, num_negatives], found [rows])` for the given anchor-positive rows."""
    from keras_siamese.inference import encode
    from keras_siamese.search import EmbeddingIndex

    index = EmbeddingIndex(encode(model, texts, batch_size=batch_size), backend=backend)
    embeddings = index.embeddings
    positive_scores = np.einsum("ij,ij->i", embeddings[anchors], embeddings[positives])
    if relative_margin is not None:
        ceilings = positive_scores - relative_margin * np.abs(positive_scores)
    else:
        ceilings = np.full(len(anchors), np.inf, np.float32)
    start, stop = rank_range
    # Enough neighbours that `stop` of them are of another label whatever the anchor's label.
    k = min(len(texts), stop + int(np.unique(ids, return_counts=True)[1].max()))
    negatives = np.zeros((len(anchors), num_negatives), np.int64)
    found = np.zeros(len(anchors), bool)
    progress = keras.utils.Progbar(len(anchors), unit_name="anchor") if verbose else None
    chunk = max(1, min(max(batch_size, _QUERIES_PER_SEARCH), _SCORES_PER_SEARCH // k))
    for first in range(0, len(anchors), chunk):
        rows = slice(first, first + chunk)
        anchor, positive = anchors[rows], positives[rows]
        scores, neighbours = index.search(embeddings[anchor], k=k)
        other_label = ids[neighbours] != ids[anchor][:, None]
        rank = np.cumsum(other_label, axis=1) - 1
        eligible = (
            other_label
            & _first_copies(text_ids[neighbours])
            & (rank >= start)
            & (rank < stop)
            & (scores <= ceilings[rows][:, None])
            & (text_ids[neighbours] != text_ids[anchor][:, None])
            & (text_ids[neighbours] != text_ids[positive][:, None])
        )
        best_first = np.argsort(~eligible, axis=1, kind="stable")[:, :num_negatives]
        negatives[rows] = np.take_along_axis(neighbours, best_first, axis=1)
        found[rows] = eligible.sum(axis=1) >= num_negatives
        if progress is not None:
            progress.add(len(anchor))
    if not found.any():
        raise ValueError(
            f"rank_range={rank_range!r} with relative_margin={relative_margin!r} leaves no anchor "
            f"{num_negatives} negative(s); widen the window or lower the margin."
        )
    return negatives, found


def _first_copies(neighbour_texts):
    """`[rows, k]` mask: True where a row meets that text id for the first time."""
    rows, k = neighbour_texts.shape
    keys = neighbour_texts + np.arange(rows)[:, None] * (int(neighbour_texts.max(initial=0)) + 1)
    first = np.zeros(rows * k, bool)
    first[np.unique(keys.reshape(-1), return_index=True)[1]] = True
    return first.reshape(rows, k)


def _anchor_positive_pairs(texts, ids, seed):
    """`(anchors, positives, text_ids)`: each text of a label with >= 2 distinct texts and
    another text of its label, drawn with `seed`; `text_ids` numbers the distinct texts."""
    text_ids = np.unique(texts, return_inverse=True)[1].reshape(-1).astype(np.int64)
    rng = np.random.default_rng([seed, 2])
    anchors, positives = [], []
    for members in group_by_class(ids)[1]:
        if len(members) < 2:
            continue
        other = rng.integers(len(members) - 1, size=len(members))
        other += other >= np.arange(len(members))  # any member but the anchor itself
        chosen = members[other]
        for i in np.flatnonzero(text_ids[chosen] == text_ids[members]):  # the same text twice: redraw
            distinct = members[text_ids[members] != text_ids[members[i]]]
            chosen[i] = rng.choice(distinct) if len(distinct) else -1
        keep = chosen >= 0
        anchors.append(members[keep])
        positives.append(chosen[keep])
    if not anchors:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), text_ids
    return np.concatenate(anchors).astype(np.int64), np.concatenate(positives).astype(np.int64), text_ids


def mine_row_negatives(model, rows, num_negatives=1, rank_range=(0, 30), relative_margin=0.05, batch_size=256,
                       backend="auto", verbose=0):
    """Gives each (anchor, positive) row `num_negatives` hard negatives from the other rows' texts.

    The candidates are the distinct texts of every column but the anchor's
    (the positives, and any negatives the rows have), embedded once with
    `keras_siamese.inference.encode` and ranked by cosine to each anchor:
    rank 0 is the most similar candidate that is not one of that anchor's
    positives (in any row) nor the anchor's own text. As in
    `mine_hard_negatives`, a negative has a rank in `[start, stop)` of
    `rank_range` and scores at most `cos(anchor, positive) - relative_margin
    * |cos(anchor, positive)|` (a candidate as close as the positive is likely
    another right answer). Rows left with fewer than `num_negatives`
    candidates are dropped.

    Args:
        model: what `inference.encode` takes (a `SentenceEmbedder`, or any model mapping strings to embeddings).
        rows: `TextRows` of pairs or rows with negatives (`keras_siamese.data.load_rows`).
        num_negatives, rank_range, relative_margin, batch_size, backend, verbose: as `mine_hard_negatives`.

    Returns:
        `TextRows` with the columns of `rows` and `negative_1` ... `negative_n` after them.

    Example:
    >>> rows = TextRows(("anchor", "positive"), (["a", "bb", "ccc"], ["aa", "bbb", "cccc"]))
    >>> mined = mine_row_negatives(lambda t: tf.one_hot(tf.strings.length(t), 8), rows, rank_range=(0, 2),
    ...                            relative_margin=None)
    >>> mined.columns, len(mined)
    (('anchor', 'positive', 'negative_1'), 3)
    """
    from keras_siamese.inference import encode
    from keras_siamese.search import EmbeddingIndex

    settings = _check_settings(num_negatives, rank_range, relative_margin, batch_size, backend, 0, verbose)
    if not isinstance(rows, TextRows) or rows.shape not in (PAIRS, ROWS_WITH_NEGATIVES):
        raise ValueError(f"rows must be TextRows of pairs or rows with negatives, got {getattr(rows, 'shape', rows)!r}.")
    if not callable(model):
        raise ValueError(f"model must be a Keras model or callable mapping texts to embeddings, got {model!r}.")
    anchors, positives = rows.texts[0], rows.texts[1]
    candidates = sorted({text for column in rows.texts[1:] for text in column})
    candidate_id = {text: number for number, text in enumerate(candidates)}
    own = {}  # anchor text -> ids of its positives and of its own text among the candidates
    for anchor, positive in zip(anchors, positives):
        own.setdefault(anchor, {candidate_id[anchor]} if anchor in candidate_id else set()).add(candidate_id[positive])
    unique_anchors = sorted(own)
    anchor_row = {text: number for number, text in enumerate(unique_anchors)}
    index = EmbeddingIndex(encode(model, candidates, batch_size=settings["batch_size"]), backend=settings["backend"])
    anchor_embeddings = encode(model, unique_anchors, batch_size=settings["batch_size"])
    anchor_embeddings /= np.maximum(np.linalg.norm(anchor_embeddings, axis=1, keepdims=True), 1e-12)  # cosines
    start, stop = settings["rank_range"]
    k = min(len(candidates), stop + max(len(ids) for ids in own.values()))
    scores, neighbours = index.search(anchor_embeddings, k=k)
    not_own = np.array([[n not in own[a] for n in row] for a, row in zip(unique_anchors, neighbours)], bool)
    rank = np.cumsum(not_own, axis=1) - 1
    row_of = np.array([anchor_row[anchor] for anchor in anchors])
    positive_scores = np.einsum("ij,ij->i", anchor_embeddings[row_of], index.embeddings[[candidate_id[p] for p in positives]])
    ceilings = np.full(len(rows), np.inf) if relative_margin is None else positive_scores - relative_margin * np.abs(positive_scores)
    eligible = (not_own & (rank >= start) & (rank < stop))[row_of] & (scores[row_of] <= ceilings[:, None])
    best_first = np.argsort(~eligible, axis=1, kind="stable")[:, :settings["num_negatives"]]
    negatives = np.take_along_axis(neighbours[row_of], best_first, axis=1)
    found = np.flatnonzero(eligible.sum(axis=1) >= settings["num_negatives"])
    if not len(found):
        raise ValueError(
            f"rank_range={rank_range!r} with relative_margin={relative_margin!r} leaves no row "
            f"{num_negatives} negative(s); widen the window or lower the margin."
        )
    kept = rows.take(found)
    names = tuple(f"negative_{n}" for n in range(len(rows.columns) - 1, len(rows.columns) - 1 + settings["num_negatives"]))
    mined = tuple([candidates[i] for i in negatives[found, n]] for n in range(settings["num_negatives"]))
    return dataclasses.replace(kept, columns=kept.columns + names, texts=kept.texts + mined)
