"""Labelled text corpora and the batch generators that feed metric-learning losses."""

from keras_siamese.data.balanced import ClassBalancedSampler, class_balanced_batches
from keras_siamese.data.epochs import ResumeSampling
from keras_siamese.data.hard_negatives import HardNegativeRefresh, HardNegatives, mine_hard_negatives
from keras_siamese.data.labels import encode_labels
from keras_siamese.data.loaders import load_csv, load_huffpost, load_jsonl
from keras_siamese.data.pairs import PairSampler, anchor_positive_batches, pair_batches
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
    "HardNegativeRefresh",
    "HardNegatives",
    "PairSampler",
    "ResumeSampling",
    "TripletSampler",
    "WORDNET_LEXNAMES",
    "anchor_positive_batches",
    "class_balanced_batches",
    "encode_labels",
    "gloss_definition",
    "load_csv",
    "load_huffpost",
    "load_jsonl",
    "load_wordnet_glosses",
    "mine_hard_negatives",
    "pair_batches",
    "read_wordnet_synsets",
    "train_test_split_by_label",
    "triplet_batches",
    "write_wordnet_sample",
]
