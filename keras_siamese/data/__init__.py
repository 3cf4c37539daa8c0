"""Labelled texts, pairs, rows with negatives and scored pairs, and the batch generators that feed the losses."""

from keras_siamese.data.balanced import ClassBalancedSampler, class_balanced_batches
from keras_siamese.data.epochs import ResumeSampling
from keras_siamese.data.hard_negatives import (
    HardNegativeRefresh,
    HardNegatives,
    mine_hard_negatives,
    mine_row_negatives,
)
from keras_siamese.data.labels import encode_labels
from keras_siamese.data.loaders import load_huffpost
from keras_siamese.data.pairs import PairSampler, anchor_positive_batches, pair_batches
from keras_siamese.data.row_batches import DuplicateFreeSampler, row_batches, streamed_row_batches
from keras_siamese.data.rows import (
    LABELLED_TEXTS,
    PAIRS,
    ROWS_WITH_NEGATIVES,
    SCORED_PAIRS,
    TextRows,
    count_rows,
    iter_rows,
    load_rows,
)
from keras_siamese.data.splits import train_test_split_by_label
from keras_siamese.data.triplets import TripletSampler, triplet_batches
from keras_siamese.data.wordnet import (
    WORDNET_LEXNAMES,
    gloss_definition,
    load_wordnet_glosses,
    read_wordnet_synsets,
    write_wordnet_sample,
)

__all__ = [
    "ClassBalancedSampler",
    "DuplicateFreeSampler",
    "HardNegativeRefresh",
    "HardNegatives",
    "LABELLED_TEXTS",
    "PAIRS",
    "PairSampler",
    "ROWS_WITH_NEGATIVES",
    "ResumeSampling",
    "SCORED_PAIRS",
    "TextRows",
    "TripletSampler",
    "WORDNET_LEXNAMES",
    "anchor_positive_batches",
    "class_balanced_batches",
    "count_rows",
    "encode_labels",
    "gloss_definition",
    "load_huffpost",
    "load_rows",
    "iter_rows",
    "load_wordnet_glosses",
    "mine_hard_negatives",
    "mine_row_negatives",
    "pair_batches",
    "read_wordnet_synsets",
    "row_batches",
    "streamed_row_batches",
    "train_test_split_by_label",
    "triplet_batches",
    "write_wordnet_sample",
]
