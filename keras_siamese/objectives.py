"""What `keras-siamese train --loss` names: each loss, the data shapes it trains on, the batches it needs
and the model `fit` trains with it (the embedding model, or the siamese pair model around it).

| `--loss`             | data (`keras_siamese.data.rows` shapes)      | batches                              |
|----------------------|----------------------------------------------|--------------------------------------|
| `semihard`, `batch-hard`, `batch-all` | labelled texts              | P classes x K texts                  |
| `mnrl`               | pairs, rows with negatives, labelled texts   | no text twice; one row per label     |
| `contrastive`, `online-contrastive` | pairs scored 0/1, labelled texts | shuffled / half same-label pairs  |
| `cosent`, `cosine`   | scored pairs (cosine: scores in [-1, 1])     | shuffled                             |

`auto` picks `semihard` for labelled texts, `mnrl` for pairs and rows with
negatives, `cosent` for scored pairs.

Example:
>>> from keras_siamese.data.rows import TextRows
>>> choose_loss("auto", TextRows(("anchor", "positive"), (["how do I pay"], ["Payment methods"])))
'mnrl'
"""

import numpy as np

from keras_siamese.data import anchor_positive_batches, class_balanced_batches, pair_batches
from keras_siamese.data.row_batches import row_batches
from keras_siamese.data.rows import LABELLED_TEXTS, PAIRS, ROWS_WITH_NEGATIVES, SCORED_PAIRS
from keras_siamese.losses import (
    CoSENTLoss,
    ContrastiveLoss,
    CosineSimilarityLoss,
    MatryoshkaLoss,
    MultipleNegativesRankingLoss,
    OnlineContrastiveLoss,
    TripletBatchAllLoss,
    TripletBatchHardLoss,
    TripletSemiHardLoss,
)
from keras_siamese.models import pair_model

TRIPLET_LOSSES = ("semihard", "batch-hard", "batch-all")
SHAPES_OF_LOSS = {
    "semihard": (LABELLED_TEXTS,),
    "batch-hard": (LABELLED_TEXTS,),
    "batch-all": (LABELLED_TEXTS,),
    "mnrl": (PAIRS, ROWS_WITH_NEGATIVES, LABELLED_TEXTS),
    "contrastive": (SCORED_PAIRS, LABELLED_TEXTS),
    "online-contrastive": (SCORED_PAIRS, LABELLED_TEXTS),
    "cosent": (SCORED_PAIRS,),
    "cosine": (SCORED_PAIRS,),
}
LOSSES = ("auto", *SHAPES_OF_LOSS)
DEFAULT_LOSS = {LABELLED_TEXTS: "semihard", PAIRS: "mnrl", ROWS_WITH_NEGATIVES: "mnrl", SCORED_PAIRS: "cosent"}
_EXAMPLE_COLUMNS = {
    LABELLED_TEXTS: "(text, label)",
    PAIRS: "(anchor, positive)",
    ROWS_WITH_NEGATIVES: "(anchor, positive, negative_1, ...)",
    SCORED_PAIRS: "(sentence1, sentence2, score)",
}


def choose_loss(loss, rows):
    """The loss `--loss` names for `rows` (`auto`: the data shape's default), checked against the data:
    a shape the loss cannot train on, or a score outside what it takes, is one `ValueError`."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")
    shape = rows.shape
    loss = DEFAULT_LOSS[shape] if loss == "auto" else loss
    if shape not in SHAPES_OF_LOSS[loss]:
        takes = " or ".join(f"{name} {_EXAMPLE_COLUMNS[name]}" for name in SHAPES_OF_LOSS[loss])
        suited = sorted(name for name, shapes in SHAPES_OF_LOSS.items() if shape in shapes)
        raise ValueError(
            f"--loss {loss} trains on {takes}; {rows.source} holds {shape} {_EXAMPLE_COLUMNS[shape]}: "
            f"use --loss {' / '.join(suited)}."
        )
    if shape != SCORED_PAIRS:
        return loss
    if loss == "cosine":
        scores = rows.scores(-1.0, 1.0, "--loss cosine (a cosine similarity)")
    else:
        scores = rows.scores(what=f"--loss {loss}")
    if loss in ("contrastive", "online-contrastive"):
        wrong = np.flatnonzero((scores != 0.0) & (scores != 1.0))
        if len(wrong):
            raise ValueError(f"{rows.where(wrong[0])}: {rows.label_column} {rows.labels[wrong[0]]!r} is not 0 or 1, "
                             f"which --loss {loss} takes (1: similar, 0: dissimilar).")
    return loss


def keras_loss(loss, margin, matryoshka_dims=()):
    """The Keras loss object of `loss` (None for `semihard` without Matryoshka dims: `TripletSemiHard`
    mines by default), wrapped in a `MatryoshkaLoss` when `matryoshka_dims` are given."""
    objects = {
        "semihard": lambda: TripletSemiHardLoss(margin=margin),
        "batch-hard": lambda: TripletBatchHardLoss(margin=margin),
        "batch-all": lambda: TripletBatchAllLoss(margin=margin),
        "mnrl": MultipleNegativesRankingLoss,
        "contrastive": lambda: ContrastiveLoss(margin=margin),
        "online-contrastive": lambda: OnlineContrastiveLoss(margin=margin),
        "cosent": CoSENTLoss,
        "cosine": CosineSimilarityLoss,
    }
    if loss == "semihard" and not matryoshka_dims:
        return None
    made = objects[loss]()
    return MatryoshkaLoss(made, dims=matryoshka_dims) if matryoshka_dims else made


def training_model(loss, embedder, rows):
    """The model `fit` trains: `embedder` itself for the triplet losses (texts and labels in), else a
    `pair_model` around it taking every text of a row."""
    if loss in TRIPLET_LOSSES:
        return embedder
    texts_per_row = 2 if rows.shape in (LABELLED_TEXTS, SCORED_PAIRS) else len(rows.columns)
    return pair_model(embedder, num_texts=texts_per_row, mini_batch_size=embedder.mini_batch_size)


def training_batches(loss, rows, settings, input_context=None):
    """The batches `loss` trains on, from `rows` (labelled texts with int labels, or pair rows), with the
    batch settings of `settings` (a `TrainingConfig`): P x K label batches for the triplet losses,
    one row per label (`mnrl`) or half same-label pairs (contrastive) from labelled texts, and
    duplicate-free rows for `mnrl` on pairs."""
    common = dict(seed=settings.seed, batches_per_epoch=settings.steps_per_epoch, input_context=input_context)
    if rows.shape == LABELLED_TEXTS:
        texts, labels = rows.texts[0], np.asarray(rows.labels)
        if loss in TRIPLET_LOSSES:
            return class_balanced_batches(texts, labels, settings.classes_per_batch, settings.samples_per_class,
                                          **common)
        if loss == "mnrl":
            return anchor_positive_batches(texts, labels, settings.batch_size, **common)
        return pair_batches(texts, labels, settings.batch_size, **common)
    return row_batches(rows, settings.batch_size, distinct_texts=loss == "mnrl", **common)


def global_batch_size(loss, settings):
    """Rows in one training batch of `loss` with `settings`' batch settings (what workers split)."""
    if loss in TRIPLET_LOSSES:
        return settings.classes_per_batch * settings.samples_per_class
    return settings.batch_size


def compile_for(model, loss, margin, matryoshka_dims, optimizer):
    """`model.compile` with `loss`'s Keras loss (see `keras_loss`) and `optimizer`."""
    made = keras_loss(loss, margin, matryoshka_dims)
    model.compile(optimizer=optimizer, **({} if made is None else {"loss": made}))
    return model

