"""The bad-input catalogue: each case names the exception and the words of its message.

Command-line cases live in tests/test_cli.py (one argparse line, exit status 2).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese import inference
from keras_siamese.data import ResumeSampling, class_balanced_batches, pair_batches
from keras_siamese.export import export_saved_model
from keras_siamese.layers.preprocessor import as_text_batch
from keras_siamese.losses import (
    ContrastiveLoss,
    MultipleNegativesRankingLoss,
    OnlineContrastiveLoss,
    TripletBatchAllLoss,
    TripletBatchHardLoss,
    TripletSemiHardLoss,
    contrastive_loss,
    online_contrastive_loss,
    triplet_batch_all_loss,
    triplet_batch_hard_loss,
    triplet_semihard_loss,
)
from keras_siamese.models import TripletSemiHard, pair_model

EMBEDDINGS = [[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0]]
LABELS = [0, 1, 0, 1]
PAIRS = np.array([[[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]], "float32")
TEXTS = [f"text {i} of class {i % 3}" for i in range(30)]
TEXT_LABELS = [i % 3 for i in range(30)]


def _dense_model(**kwargs):
    x = keras.Input((2,))
    return TripletSemiHard(inputs=x, outputs=keras.layers.Dense(2)(x), **kwargs)


CASES = {
    # margins: finite numbers >= 0, checked at the door
    "semi-hard margin negative": (lambda: triplet_semihard_loss(LABELS, EMBEDDINGS, margin=-1.0),
                                  ValueError, "margin must be a finite number >= 0, got -1.0"),
    "semi-hard margin NaN": (lambda: triplet_semihard_loss(LABELS, EMBEDDINGS, margin=float("nan")),
                             ValueError, "margin must be a finite number >= 0, got nan"),
    "semi-hard margin string": (lambda: triplet_semihard_loss(LABELS, EMBEDDINGS, margin="1"),
                                ValueError, "margin must be a finite number >= 0, got '1'"),
    "batch-hard margin infinite": (lambda: triplet_batch_hard_loss(LABELS, EMBEDDINGS, margin=float("inf")),
                                   ValueError, "margin must be a finite number >= 0, got inf"),
    "batch-all margin bool": (lambda: triplet_batch_all_loss(LABELS, EMBEDDINGS, margin=True),
                              ValueError, "margin must be a finite number >= 0, got True"),
    "TripletSemiHardLoss margin": (lambda: TripletSemiHardLoss(margin=-0.1), ValueError, "got -0.1"),
    "TripletBatchHardLoss margin": (lambda: TripletBatchHardLoss(margin=None), ValueError, "got None"),
    "TripletBatchAllLoss margin": (lambda: TripletBatchAllLoss(margin="wide"), ValueError, "got 'wide'"),
    "ContrastiveLoss margin": (lambda: ContrastiveLoss(margin=-2), ValueError, "got -2"),
    "OnlineContrastiveLoss margin": (lambda: OnlineContrastiveLoss(margin=float("nan")), ValueError, "got nan"),
    "contrastive margin": (lambda: contrastive_loss([1, 0], PAIRS, margin=-1), ValueError, "got -1"),
    "TripletSemiHard margin": (lambda: _dense_model(margin=-0.5), ValueError, "margin must be a finite number"),
    # distances
    "unknown triplet distance": (lambda: triplet_semihard_loss(LABELS, EMBEDDINGS, distance="manhattan"),
                                 ValueError, "Unknown distance 'manhattan'"),
    "TripletSemiHard distance": (lambda: _dense_model(distance="cosine-ish"), ValueError, "Unknown distance"),
    "unknown pair distance": (lambda: contrastive_loss([1, 0], PAIRS, distance="L2"),
                              ValueError, "Unknown pair distance 'L2'"),
    # labels and embeddings
    "contrastive label 2": (lambda: contrastive_loss([2.0, 0.0], PAIRS), ValueError,
                            "must be 1 (similar pair) or 0 (dissimilar pair), got [2.0]"),
    "online contrastive label -1": (lambda: online_contrastive_loss([1.0, -1.0], PAIRS), ValueError,
                                    "got [-1.0]"),
    "pair labels per pair": (lambda: contrastive_loss([1, 0, 1], PAIRS), ValueError,
                             "must have one entry per pair: got 3 for 2 pairs"),
    "string labels to a loss": (lambda: triplet_semihard_loss(["a", "b", "a", "b"], EMBEDDINGS),
                                ValueError, "labels must be integers, got dtype string"),
    "labels of rank 3": (lambda: triplet_semihard_loss(np.zeros((4, 1, 1), "int32"), EMBEDDINGS),
                         ValueError, "labels must have shape [B] or [B, 1]"),
    "NaN embeddings": (lambda: triplet_semihard_loss(LABELS, [[np.nan, 0.0]] + EMBEDDINGS[1:]),
                       ValueError, "embeddings contain NaN or infinite values"),
    "integer embeddings": (lambda: triplet_semihard_loss(LABELS, np.ones((4, 2), "int32")),
                           ValueError, "embeddings must be a float tensor, got dtype int32"),
    "embeddings of rank 1": (lambda: triplet_semihard_loss(LABELS, [0.0, 1.0, 2.0, 3.0]),
                             ValueError, "embeddings must have rank 2"),
    "pairs of rank 2": (lambda: MultipleNegativesRankingLoss()(np.zeros(2), np.ones((2, 3), "float32")),
                        ValueError, "must have rank 3"),
    # texts
    "texts of rank 2 (tensor)": (lambda: as_text_batch(tf.constant([["a", "b"], ["c", "d"]])),
                                 ValueError, "Texts must be a flat batch (rank 1), got shape (2, 2)"),
    "texts of rank 2 (numpy)": (lambda: as_text_batch(np.array([["a"], ["b"]], object)),
                                ValueError, "got an array of shape (2, 1)"),
    "texts that are numbers": (lambda: as_text_batch(tf.constant([1, 2])),
                               ValueError, "Texts must be strings (tf.string), got dtype int32"),
    "encode of numbers": (lambda: inference.encode(lambda t: t, [1, 2]), ValueError, "str or bytes"),
    "encode batch size 0": (lambda: inference.encode(lambda t: t, ["a"], batch_size=0),
                            ValueError, "batch_size must be a positive integer, got 0"),
    "predict(None)": (lambda: _dense_model().predict(None), ValueError, "predict takes texts"),
    # models
    "mini_batch_size 0": (lambda: _dense_model(mini_batch_size=0), ValueError,
                          "mini_batch_size must be a positive integer or None, got 0"),
    "mini_batch_size float": (lambda: _dense_model(mini_batch_size=2.5), ValueError, "got 2.5"),
    "unknown model argument": (lambda: _dense_model(mini_batch=4), TypeError,
                               "unexpected keyword arguments: mini_batch"),
    "pair_model of 1 text": (lambda: pair_model(_dense_model(), num_texts=1), ValueError,
                             "num_texts must be an integer >= 2, got 1"),
    # batch generators
    "more classes per batch than classes": (lambda: class_balanced_batches(TEXTS, TEXT_LABELS, 4, 2),
                                            ValueError, "classes_per_batch=4 exceeds the 3 classes"),
    "global batch over workers": (lambda: class_balanced_batches(
        TEXTS, TEXT_LABELS, 3, 3, input_context=tf.distribute.InputContext(2, 0)),
        ValueError, "global batch of 9 texts does not split evenly over 2 workers"),
    "texts and labels differ in length": (lambda: class_balanced_batches(TEXTS, TEXT_LABELS[:-1], 3, 2),
                                          ValueError, "texts and labels differ in length: 30 texts, 29 labels"),
    "pair batch of 0": (lambda: pair_batches(TEXTS, TEXT_LABELS, batch_size=0), ValueError, "batch_size"),
    "ResumeSampling of a plain dataset": (lambda: ResumeSampling(tf.data.Dataset.range(3)), ValueError,
                                          "ResumeSampling takes a dataset made by keras_siamese.data"),
    # export
    "export version negative": (lambda: export_saved_model(_dense_model(), "/tmp/never", version=-1),
                                ValueError, "version must be a non-negative integer that fits TF Serving's int64, got -1"),
    "export version beyond int64": (lambda: export_saved_model(_dense_model(), "/tmp/never", version=2**63),
                                    ValueError, "fits TF Serving's int64, got 9223372036854775808"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_a_clear_error(case):
    call, error_type, words = CASES[case]
    with pytest.raises(error_type) as raised:
        call()
    assert words in str(raised.value), str(raised.value)
