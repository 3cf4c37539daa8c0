"""The bad-input catalogue: each case names the exception and the words of its message.

Command-line cases live in tests/test_cli.py (one argparse line, exit status 2); a damaged
warmup file and a damaged SavedModel under the C++ serving check in tests/export/test_serving_check.py.
"""

import atexit
import functools
import pathlib
import shutil
import tempfile
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese import inference
from keras_siamese.data import (
    ResumeSampling,
    TripletSampler,
    anchor_positive_batches,
    class_balanced_batches,
    encode_labels,
    load_csv,
    load_huffpost,
    load_jsonl,
    load_wordnet_glosses,
    pair_batches,
    train_test_split_by_label,
    triplet_batches,
)
from keras_siamese.evaluation import (
    RetrievalEvaluation,
    classification_report,
    knn_classify,
    knn_scores,
    retrieval_metrics,
    roc_auc,
)
from keras_siamese.artifacts import UnreadableFileError
from keras_siamese.export import (
    ServingLoad,
    check_serving,
    check_serving_ops,
    export_saved_model,
    read_metadata,
)
from keras_siamese.layers import L2Normalize, Pooling, Projection, TextPreprocessor, train_sentencepiece
from keras_siamese.layers.freezing import freeze_backbone
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
from keras_siamese.models import TripletSemiHard, load_model, pair_model
from keras_siamese.search import EmbeddingIndex, SemanticSearch, exact_top_k, l2_normalize
from keras_siamese.settings import check_integers
from keras_siamese.sources import EncoderSource
from keras_siamese.training import TrainingConfig

EMBEDDINGS = [[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0]]
LABELS = [0, 1, 0, 1]
PAIRS = np.array([[[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]], "float32")
TEXTS = [f"text {i} of class {i % 3}" for i in range(30)]
TEXT_LABELS = [i % 3 for i in range(30)]
EYE = np.eye(2, dtype="float32")


def _dense_model(**kwargs):
    x = keras.Input((2,))
    return TripletSemiHard(inputs=x, outputs=keras.layers.Dense(2)(x), **kwargs)


def _index(**kwargs):
    return EmbeddingIndex(EMBEDDINGS, **kwargs)


def _two_dims(texts):
    """A stand-in text encoder: two numbers per text."""
    return np.array([[len(text), 1.0] for text in texts], "float32")


def _balanced(**kwargs):
    return class_balanced_batches(TEXTS, TEXT_LABELS, 3, 2, **kwargs)


def _retrieval(**kwargs):
    return retrieval_metrics(EMBEDDINGS, LABELS, EMBEDDINGS, LABELS, **kwargs)


def _backbone(**attributes):
    """A stand-in backbone with just the given attributes."""
    return types.SimpleNamespace(**attributes)


def _scratch_dir():
    """A fresh temporary directory, removed at exit (the cases are plain lambdas: no tmp_path)."""
    directory = tempfile.mkdtemp(prefix="bad_input_")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return pathlib.Path(directory)


def _corpus_file(name, text):
    path = _scratch_dir() / name
    path.write_text(text)
    return path


@functools.cache
def _artefacts():
    """Saved artefacts (model, weights, index) and damaged copies of them, in one scratch directory."""
    root = _scratch_dir()
    model = _dense_model()
    model.save(root / "model.keras")
    model.save_weights(root / "model.weights.h5")
    EmbeddingIndex(np.eye(3, dtype="float32")).save(root / "index.npz")
    np.savez(root / "other.npz", values=np.ones(2))
    for name in ("model.keras", "model.weights.h5", "index.npz"):
        data = (root / name).read_bytes()
        extension = name.split(".", 1)[1]
        _write(root / f"empty.{extension}", b"")
        _write(root / f"truncated.{extension}", data[: len(data) // 2])
    data = bytearray((root / "model.keras").read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 16):  # the same size, one member's bytes wrong
        data[i] ^= 0xFF
    _write(root / "overwritten.keras", bytes(data))
    _write(root / "backup" / "latest.weights.h5", (root / "model.weights.h5").read_bytes()[:100])
    _write(root / "graph" / "1" / "saved_model.pb", b"\x0a\xff\xff\xff")
    _write(root / "graph" / "1" / "assets.extra" / "keras_siamese.json", b'{"embedding_size": 6')
    _write(root / "empty_graph" / "1" / "saved_model.pb", b"")
    return root


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _file(name):
    return _artefacts() / name


def _resume_from_damaged_backup():
    model = _dense_model()
    model.compile(optimizer="sgd")
    model.fit(EYE, np.array([0, 1]), epochs=1, verbose=0,
              callbacks=[keras.callbacks.BackupAndRestore(_file("backup"))])


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
        ValueError, "global batch of 9 rows does not split evenly over 2 replicas"),
    "texts and labels differ in length": (lambda: class_balanced_batches(TEXTS, TEXT_LABELS[:-1], 3, 2),
                                          ValueError, "texts and labels differ in length: 30 texts, 29 labels"),
    "pair batch of 0": (lambda: pair_batches(TEXTS, TEXT_LABELS, batch_size=0), ValueError, "batch_size"),
    "ResumeSampling of a plain dataset": (lambda: ResumeSampling(tf.data.Dataset.range(3)), ValueError,
                                          "ResumeSampling takes a dataset made by keras_siamese.data"),
    # search: the embedding index
    "index k 0": (lambda: _index().search(EMBEDDINGS, k=0), ValueError,
                  "k must be a positive integer, got 0."),
    "index nprobe 0": (lambda: _index(nprobe=0), ValueError, "nprobe must be a positive integer, got 0"),
    "index nlist 2.5": (lambda: _index(nlist=2.5), ValueError, "nlist must be a positive integer, got 2.5"),
    "index k bool": (lambda: _index().search(EMBEDDINGS, k=True), ValueError, "got True"),
    "index query of another dimension": (lambda: _index().search([[1.0, 0.0, 0.0]]), ValueError,
                                         "query embeddings have dimension 3 but the corpus has dimension 2"),
    "index unknown backend": (lambda: _index(backend="annoy"), ValueError,
                              "backend must be one of ('exact', 'faiss', 'faiss-ivf', 'auto'), got 'annoy'"),
    "index ids of another length": (lambda: _index(ids=[7]), ValueError, "ids has 1 items for 4 embeddings"),
    "index texts as one string": (lambda: _index(texts="abcd"), ValueError,
                                  "texts must be a sequence, not a single string"),
    "index labels of another length": (lambda: _index(labels=LABELS + [0]), ValueError,
                                       "labels has 5 items for 4 embeddings"),
    "index of no embeddings": (lambda: EmbeddingIndex(np.zeros((0, 2))), ValueError,
                               "embeddings is empty (shape (0, 2))"),
    "index NaN embedding": (lambda: EmbeddingIndex([[np.nan, 1.0]]), ValueError,
                            "embeddings contain NaN or infinite values"),
    "index embeddings of rank 1": (lambda: EmbeddingIndex([0.0, 1.0]), ValueError,
                                   "embeddings must be 2-D [count, dimension], got shape (2,)"),
    "index string embeddings": (lambda: EmbeddingIndex([["a", "b"]]), ValueError,
                                "embeddings must be a numeric array, got list"),
    "index batch_size 0": (lambda: _index(batch_size=0).search(EMBEDDINGS, k=1), ValueError,
                           "batch_size must be a positive integer or None, got 0"),
    "index ids that cannot be saved": (lambda: _index(ids=[1, "b", 3, 4]).save(_scratch_dir() / "index.npz"),
                                       ValueError, "To save, ids must be all strings or all numbers"),
    # search: exact helpers and the text-level wrapper
    "exact_top_k k float": (lambda: exact_top_k(EYE, EYE, k=1.5), ValueError,
                            "k must be in [1, 2] (the corpus size), got 1.5"),
    "exact_top_k k beyond corpus": (lambda: exact_top_k(EYE, EYE, k=3), ValueError, "got 3"),
    "exact_top_k dimensions differ": (lambda: exact_top_k(np.eye(3, dtype="float32"), EYE, k=1), ValueError,
                                      "query embeddings have dimension 3 but the corpus has dimension 2"),
    "l2_normalize NaN": (lambda: l2_normalize([[np.nan, 1.0]]), ValueError, "contain NaN or infinite values"),
    "l2_normalize rank 1": (lambda: l2_normalize([3.0, 4.0]), ValueError, "must be 2-D [count, dimension]"),
    "l2_normalize epsilon 0": (lambda: l2_normalize(EMBEDDINGS, epsilon=0), ValueError,
                               "epsilon must be a finite number > 0, got 0"),
    "SemanticSearch encoder not callable": (lambda: SemanticSearch("encoder", _index()), ValueError,
                                            "encoder must be callable, got str"),
    "SemanticSearch index None": (lambda: SemanticSearch(_two_dims, None), ValueError,
                                  "index must be an EmbeddingIndex, got NoneType"),
    "SemanticSearch batch_size 0": (lambda: SemanticSearch.from_texts(_two_dims, ["a"], batch_size=0),
                                    ValueError, "batch_size must be a positive integer, got 0"),
    "SemanticSearch encoder drops texts": (
        lambda: SemanticSearch.from_texts(lambda t: np.ones((1, 2)), TEXTS),
        ValueError, "for 30 texts it returned shape (1, 2)"),
    "SemanticSearch of None": (lambda: SemanticSearch.from_texts(_two_dims, ["a"]).search(None), ValueError,
                               "texts must be a sequence of strings, got NoneType"),
    "SemanticSearch of no texts": (lambda: SemanticSearch.from_texts(_two_dims, []), ValueError,
                                   "texts is empty"),
    # data: class-balanced batches (P classes x K examples)
    "samples_per_class 1": (lambda: class_balanced_batches(TEXTS, TEXT_LABELS, 3, 1), ValueError,
                            "samples_per_class must be an integer >= 2, got 1"),
    "samples_per_class 0": (lambda: class_balanced_batches(TEXTS, TEXT_LABELS, 3, 0), ValueError, "got 0"),
    "samples_per_class float": (lambda: class_balanced_batches(TEXTS, TEXT_LABELS, 3, 2.0), ValueError,
                                "got 2.0"),
    "classes_per_batch bool": (lambda: class_balanced_batches(TEXTS, TEXT_LABELS, True, 2), ValueError,
                               "classes_per_batch must be an integer >= 2, got True"),
    "batches_per_epoch 0": (lambda: _balanced(batches_per_epoch=0), ValueError,
                            "batches_per_epoch must be a positive integer, got 0"),
    "seed negative": (lambda: _balanced(seed=-1), ValueError, "seed must be a non-negative integer, got -1"),
    "one class to balance": (lambda: class_balanced_batches(TEXTS, [0] * 30, 2, 2), ValueError,
                             "need at least 2 classes with >= 2 examples each, found 1"),
    "lengths without bucket_boundaries": (lambda: _balanced(lengths=[1] * 30), ValueError,
                                          "lengths and bucket_boundaries must be given together"),
    "NaN lengths": (lambda: _balanced(lengths=[np.nan] * 30, bucket_boundaries=[4]), ValueError,
                    "lengths must be 30 finite numbers, one per text"),
    "string bucket_boundaries": (lambda: _balanced(lengths=[1] * 30, bucket_boundaries=["8"]), ValueError,
                                 "bucket_boundaries must be a non-empty increasing 1-D sequence of numbers"),
    "input_context not an InputContext": (lambda: _balanced(input_context=2), ValueError,
                                          "input_context must be a tf.distribute.InputContext, got int"),
    # data: the corpus and its labels
    "texts None": (lambda: class_balanced_batches(None, TEXT_LABELS), ValueError,
                   "texts must be a sequence of strings, got NoneType"),
    "texts that are numbers (corpus)": (lambda: triplet_batches(list(range(30)), TEXT_LABELS), ValueError,
                                        "texts must all be strings, found a int at position 0: 0"),
    "labels booleans": (lambda: encode_labels([True, False]), ValueError,
                        "labels are booleans; use integer class ids or strings"),
    "labels with a fractional part": (lambda: encode_labels([0.5, 1.0]), ValueError,
                                      "labels are floats with a fractional part"),
    "labels mixing ints and strings": (lambda: encode_labels([0, "sport"]), ValueError,
                                       "must all be integers or all be strings, got types ['int', 'str']"),
    "labels beyond int32": (lambda: encode_labels([0, 2**40]), ValueError,
                            "integer labels must fit in int32"),
    "labels of rank 2 (corpus)": (lambda: encode_labels([[0], [1]]), ValueError,
                                  "labels must be 1-D (one label per text), got shape (2, 1)"),
    "labels empty": (lambda: encode_labels([]), ValueError, "labels is empty"),
    # data: triplets, pairs and splits
    "triplet batch of 0": (lambda: triplet_batches(TEXTS, TEXT_LABELS, batch_size=0), ValueError,
                           "batch_size must be a positive integer, got 0"),
    "triplets of one class": (lambda: triplet_batches(TEXTS, [0] * 30), ValueError,
                              "triplets need at least 2 classes, found 1"),
    "triplets without a pair": (lambda: triplet_batches(["a", "b"], [0, 1]), ValueError,
                                "triplets need a class with at least 2 texts, found none"),
    "epoch negative": (lambda: TripletSampler(TEXT_LABELS, 2).epoch_indices(-1), ValueError,
                       "epoch must be a non-negative integer, got -1"),
    "positive_fraction 1.5": (lambda: pair_batches(TEXTS, TEXT_LABELS, positive_fraction=1.5), ValueError,
                              "positive_fraction must be a number in [0, 1], got 1.5"),
    "anchor-positive batch of 1": (lambda: anchor_positive_batches(TEXTS, TEXT_LABELS, batch_size=1),
                                   ValueError, "batch_size must be an integer >= 2, got 1"),
    "anchor-positive batch over the labels": (lambda: anchor_positive_batches(TEXTS, TEXT_LABELS, 4),
                                              ValueError, "batch_size=4 exceeds the 3 labels with >= 2"),
    "test_fraction 1": (lambda: train_test_split_by_label(TEXTS, TEXT_LABELS, 1.0), ValueError,
                        "test_fraction must be a number in (0, 1), got 1.0"),
    "test_fraction NaN": (lambda: train_test_split_by_label(TEXTS, TEXT_LABELS, float("nan")), ValueError,
                          "got nan"),
    # data: corpus files (missing, empty, without the field asked for; damaged files are elsewhere)
    "jsonl file missing": (lambda: load_jsonl(_scratch_dir() / "absent.jsonl", "text", "label"),
                           FileNotFoundError, "no such corpus file: "),
    "jsonl path None": (lambda: load_jsonl(None, "text", "label"), ValueError,
                        "path must be a file path, got NoneType"),
    "jsonl file empty": (lambda: load_jsonl(_corpus_file("empty.jsonl", ""), "text", "label"), ValueError,
                         "empty.jsonl: no labelled texts found"),
    "jsonl field missing": (lambda: load_jsonl(_corpus_file("c.jsonl", '{"text": "a dog", "label": "pet"}\n'),
                                               "sentence", "label"),
                            ValueError, "line 1: no field 'sentence'; fields are ['label', 'text']"),
    "csv column missing": (lambda: load_csv(_corpus_file("c.csv", "sentence,label\na,b\n"), "text", "label"),
                           ValueError, "no column ['text'] in the header; columns are ['sentence', 'label']"),
    "csv file empty": (lambda: load_csv(_corpus_file("empty.csv", ""), "text", "label"), ValueError,
                       "no column ['text', 'label'] in the header; columns are []"),
    "csv file missing": (lambda: load_csv(_scratch_dir() / "absent.csv", "text", "label"), FileNotFoundError,
                         "no such corpus file: "),
    "huffpost min_words string": (lambda: load_huffpost(_corpus_file("news.json", ""), min_words="10"),
                                  ValueError, "min_words must be a non-negative integer, got '10'"),
    "wordnet text mode": (lambda: load_wordnet_glosses("bundled", text="examples"), ValueError,
                          "text must be 'gloss' or 'definition', got 'examples'"),
    "wordnet min_class_size 0": (lambda: load_wordnet_glosses("bundled", min_class_size=0), ValueError,
                                 "min_class_size must be a positive integer, got 0"),
    "wordnet source missing": (lambda: load_wordnet_glosses("/no/such/wordnet"), ValueError,
                               "got '/no/such/wordnet', which does not exist"),
    "wordnet source None": (lambda: load_wordnet_glosses(None), ValueError,
                            "a WordNet directory or a sample file; got None"),
    # evaluation
    "retrieval ks 0": (lambda: _retrieval(ks=(0,)), ValueError, "ks must be positive integers, got 0"),
    "retrieval ks float": (lambda: _retrieval(ks=1.5), ValueError, "ks must be positive integers, got 1.5"),
    "retrieval ks empty": (lambda: _retrieval(ks=()), ValueError, "ks is empty"),
    "retrieval labels per query": (lambda: retrieval_metrics(EMBEDDINGS, LABELS[:3], EMBEDDINGS, LABELS),
                                   ValueError, "query_labels must hold one label per embedding (4), got"),
    "retrieval exclude_self of other queries": (
        lambda: retrieval_metrics(EMBEDDINGS[:1], LABELS[:1], EMBEDDINGS, LABELS, exclude_self=True),
        ValueError, "exclude_self needs the queries to be the corpus"),
    "knn k 0": (lambda: knn_classify(EMBEDDINGS, EMBEDDINGS, LABELS, k=0), ValueError,
                "k must be an integer in [1, 4] (the corpus size), got 0"),
    "knn weighting": (lambda: knn_classify(EMBEDDINGS, EMBEDDINGS, LABELS, k=1, weighting="distance"),
                      ValueError, "weighting must be one of ('uniform', 'similarity'), got 'distance'"),
    "knn labels per corpus item": (lambda: knn_classify(EMBEDDINGS, EMBEDDINGS, LABELS[:3], k=1), ValueError,
                                   "corpus_labels has 3 labels for 4 corpus embeddings"),
    "knn_scores num_classes float": (lambda: knn_scores(EMBEDDINGS, EMBEDDINGS, LABELS, num_classes=2.5, k=1),
                                     ValueError, "num_classes must be a positive integer or None, got 2.5"),
    "knn_scores negative class": (lambda: knn_scores(EMBEDDINGS, EMBEDDINGS, [0, -1, 0, 1], k=1), ValueError,
                                  "corpus_labels has a negative class id -1"),
    "report lengths differ": (lambda: classification_report([0, 1, 1], [0, 1]), ValueError,
                              "y_true has 3 labels but y_pred has 2 predictions"),
    "report score columns": (lambda: classification_report([0, 1], [[0.2, 0.8], [0.6, 0.4]], num_classes=3),
                             ValueError, "y_pred has 2 score columns but num_classes is 3"),
    "roc_auc lengths differ": (lambda: roc_auc([True, False, True], [0.1, 0.2]), ValueError,
                               "must be 1-D of the same length, got shapes (3,) and (2,)"),
    "roc_auc NaN score": (lambda: roc_auc([True, False], [np.nan, 0.2]), ValueError,
                          "scores contain NaN values"),
    "roc_auc labels not 0/1": (lambda: roc_auc([2, 0, 1], [0.1, 0.2, 0.3]), ValueError,
                               "is_positive must hold booleans or 0/1 values"),
    "roc_auc of one class": (lambda: roc_auc([True, True], [0.1, 0.2]), ValueError,
                             "ROC AUC needs at least one positive and one negative example"),
    "RetrievalEvaluation ks 0": (lambda: RetrievalEvaluation(["a", "b"], [0, 1], ks=(1, 0)), ValueError,
                                 "ks must be positive integers, got 0"),
    "RetrievalEvaluation labels per query": (lambda: RetrievalEvaluation(["a", "b"], [0]), ValueError,
                                             "query_labels has 1 labels for 2 queries"),
    "RetrievalEvaluation corpus without labels": (lambda: RetrievalEvaluation(["a"], [0], corpus=["b"]),
                                                  ValueError, "Give corpus and corpus_labels together"),
    "RetrievalEvaluation embed_fn": (lambda: RetrievalEvaluation(["a"], [0], embed_fn="encode"), ValueError,
                                     "embed_fn must be callable, got str"),
    # training settings
    "config precision float64": (lambda: TrainingConfig(precision="float64").check(), ValueError,
                                 "precision must be one of ('float32', 'bfloat16', 'float16'), got 'float64'"),
    "config matmul precision": (lambda: TrainingConfig(matmul_precision="tf32").check(), ValueError,
                                "matmul_precision must be one of ('float32', 'bf16'), got 'tf32'"),
    "config epochs 0": (lambda: TrainingConfig(epochs=0).check(), ValueError,
                        "epochs must be a positive integer, got 0"),
    "config learning rate negative": (lambda: TrainingConfig(learning_rate=-1e-3).check(), ValueError,
                                      "learning_rate must be a finite positive number, got -0.001"),
    "config margin NaN": (lambda: TrainingConfig(margin=float("nan")).check(), ValueError,
                          "margin must be a finite number >= 0, got nan"),
    "config test_fraction 1": (lambda: TrainingConfig(test_fraction=1.0).check(), ValueError,
                               "test_fraction must be in (0, 1), got 1.0"),
    "config samples_per_class 1": (lambda: TrainingConfig(samples_per_class=1).check(), ValueError,
                                   "samples_per_class must be an integer >= 2, got 1"),
    "config steps_per_epoch bool": (lambda: TrainingConfig(steps_per_epoch=True).check(), ValueError,
                                    "steps_per_epoch must be a positive integer, got True"),
    "config sequence_length 2": (lambda: EncoderSource(sequence_length=2).check(), ValueError,
                                 "sequence_length must be at least 3 ([CLS], [SEP] and a token), got 2"),
    "config learning rate string": (lambda: TrainingConfig(learning_rate="1e-3").check(), ValueError,
                                    "learning_rate must be a finite positive number, got '1e-3'"),
    "config margin string": (lambda: TrainingConfig(margin="0.5").check(), ValueError,
                             "margin must be a finite number >= 0, got '0.5'"),
    "config test_fraction string": (lambda: TrainingConfig(test_fraction="0.1").check(), ValueError,
                                    "test_fraction must be in (0, 1), got '0.1'"),
    "config pooling unknown": (lambda: TrainingConfig(pooling="avg").check(), ValueError,
                               "pooling must be one of ('pooled', 'cls', 'mean', 'max', 'mean_sqrt_len'), got 'avg'"),
    "config seed negative": (lambda: TrainingConfig(seed=-1).check(), ValueError, "seed must be a non-negative integer, got -1"),
    "settings integer below minimum": (lambda: check_integers(types.SimpleNamespace(units=1), ["units"], 2),
                                       ValueError, "units must be an integer >= 2, got 1"),
    # layers
    "Projection output_units 0": (lambda: Projection(output_units=0), ValueError,
                                  "output_units must be a positive integer, got 0"),
    "Projection hidden_units int": (lambda: Projection(hidden_units=64), ValueError,
                                    "must be a sequence of positive integers such as (64,), got 64"),
    "Projection dropout 1": (lambda: Projection(dropout=1.0), ValueError,
                             "dropout must be a number in [0, 1), got 1.0"),
    "L2Normalize epsilon 0": (lambda: L2Normalize(epsilon=0.0), ValueError,
                              "epsilon must be a finite number > 0, got 0.0"),
    "L2Normalize axis string": (lambda: L2Normalize(axis="last"), ValueError,
                                "axis must be an integer, got 'last'"),
    "Pooling unknown mode": (lambda: Pooling("avg"), ValueError,
                             "Unknown pooling mode 'avg'; expected one of"),
    "Pooling of a tensor": (lambda: Pooling("mean")(tf.ones([2, 3, 4])), ValueError,
                            "Pooling('mean') takes the encoder's features, a dict with"),
    "Pooling without padding_mask": (lambda: Pooling("max")({"sequence_output": tf.ones([2, 3, 4])}),
                                     ValueError, "'padding_mask']; got ['sequence_output']"),
    "TextPreprocessor sequence_length 2": (lambda: TextPreprocessor(None, sequence_length=2), ValueError,
                                           "must be an integer leaving room for [CLS], [SEP]"),
    "length_buckets beyond sequence_length": (lambda: TextPreprocessor(None, 8, length_buckets=[4, 16]),
                                              ValueError, "no larger than sequence_length=8, got [4, 16]"),
    "length_buckets a number": (lambda: TextPreprocessor(None, 8, length_buckets=4), ValueError,
                                "length_buckets must be a list of integer lengths, got 4"),
    "length_buckets of words": (lambda: TextPreprocessor(None, 8, length_buckets=["a"]), ValueError,
                                "length_buckets must be a list of integer lengths, got ['a']"),
    "tokenizer without special tokens": (lambda: TextPreprocessor(object(), 8), ValueError,
                                         "object defines none of ('cls_token_id', 'start_token_id')"),
    "freeze a backbone without layers": (lambda: freeze_backbone(object(), 2), ValueError,
                                         "object has no `transformer_layers`"),
    "freeze more layers than there are": (lambda: freeze_backbone(_backbone(transformer_layers=[1, 2]), 3),
                                          ValueError, "must be 'all' or an integer from 0 to 2"),
    "vocabulary of blank texts": (lambda: train_sentencepiece(["", "  "], 100), ValueError,
                                  "Cannot train a vocabulary on an empty corpus."),
    # damaged or foreign files: one error that names the file and what is wrong
    ".keras missing": (lambda: load_model(_file("missing.keras")), FileNotFoundError, "missing.keras: no such file"),
    ".keras empty": (lambda: load_model(_file("empty.keras")), UnreadableFileError,
                     "empty.keras is not a readable .keras model file: it is empty (0 bytes)"),
    ".keras truncated": (lambda: load_model(_file("truncated.keras")), UnreadableFileError,
                         "truncated.keras is not a readable .keras model file: File is not a zip file"),
    ".keras overwritten inside": (lambda: load_model(_file("overwritten.keras")), UnreadableFileError,
                                  "member model.weights.h5 fails its CRC check"),
    ".weights.h5 empty": (lambda: _dense_model().load_weights(_file("empty.weights.h5")), UnreadableFileError,
                          "empty.weights.h5 is not a readable Keras weights file: it is empty (0 bytes)"),
    ".weights.h5 truncated": (lambda: _dense_model().load_weights(_file("truncated.weights.h5")),
                              UnreadableFileError, "truncated.weights.h5 is not a readable Keras weights file"),
    "backup cut short": (_resume_from_damaged_backup, UnreadableFileError,
                         "latest.weights.h5 is not a readable Keras weights file"),
    "index empty": (lambda: EmbeddingIndex.load(_file("empty.npz")), UnreadableFileError,
                    "empty.npz is not a readable index file (EmbeddingIndex.save): it is empty (0 bytes)"),
    "index truncated": (lambda: EmbeddingIndex.load(_file("truncated.npz")), UnreadableFileError,
                        "truncated.npz is not a readable index file (EmbeddingIndex.save): File is not a zip"),
    "index of another .npz": (lambda: EmbeddingIndex.load(_file("other.npz")), UnreadableFileError,
                              "it has no embeddings and config arrays"),
    "index that is a .keras file": (lambda: EmbeddingIndex.load(_file("model.keras")), UnreadableFileError,
                                    "model.keras is not a readable index file"),
    "saved_model.pb corrupt": (lambda: check_serving_ops(_file("graph/1")), UnreadableFileError,
                               "saved_model.pb is not a readable SavedModel graph (saved_model.pb): Error parsing"),
    "saved_model.pb empty": (lambda: check_serving_ops(_file("empty_graph/1")), UnreadableFileError,
                             "saved_model.pb is not a readable SavedModel graph (saved_model.pb): it is empty"),
    "metadata truncated": (lambda: read_metadata(_file("graph/1")), UnreadableFileError,
                           "keras_siamese.json is not a readable metadata file"),
    "no SavedModel to check": (lambda: check_serving(_artefacts()), ValueError, "is not a SavedModel directory"),
    # serving check
    "ServingLoad of 0 threads": (lambda: ServingLoad(threads=0), ValueError,
                                 "ServingLoad.threads must be a positive integer, got 0"),
    "ServingLoad tolerance": (lambda: ServingLoad(tolerance=-1e-5), ValueError, "tolerance must be a number >= 0"),
    "load that is not a ServingLoad": (lambda: check_serving(_file("graph/1"), load=8), ValueError,
                                       "load must be a ServingLoad or None, got 8"),
    # export
    "text export of a float model": (lambda: export_saved_model(_dense_model(), _scratch_dir()), ValueError,
                                     "takes float32 (None, 2) and has no preprocessor"),
    "token export of a float model": (lambda: export_saved_model(_dense_model(), _scratch_dir(), signatures="tokens"),
                                      ValueError, "The token signature needs a token-level model with a preprocessor"),
    "unknown signature kind": (lambda: export_saved_model(_dense_model(), _scratch_dir(), signatures=("ids",)),
                               ValueError, "signatures must name one or both of"),
    "warmup without the text signature": (lambda: export_saved_model(
        _dense_model(), _scratch_dir(), signatures="tokens", warmup_texts=["a"]), ValueError,
        "warmup_texts needs the text signature"),
    "export computing in int8": (lambda: export_saved_model(_dense_model(), _scratch_dir(), compute_dtype="int8"),
                                 ValueError, "compute_dtype must be one of ('float32', 'bfloat16', 'float16'), got 'int8'"),
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
