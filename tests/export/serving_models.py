"""Small SavedModels for the serving tests, built without keras_siamese's export.

`save_pair_packing_model` tokenises in-graph with keras-hub's
SentencePieceTokenizer and packs two segments with MultiSegmentPacker, which
emits TF Text's `TFText>RoundRobinTrim` (linked by TF Serving only since 2.20),
then mean-pools an embedding table and L2-normalises.

`damaged_artefacts` writes damaged version directories for the export folder's bad-input cases.
"""

import functools
import os

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tests.harness import scratch_dir

SEQUENCE_LENGTH = 16
DIM = 8


def sentencepiece_proto(texts, vocabulary_size=300):
    import keras_hub

    return keras_hub.tokenizers.compute_sentence_piece_proto(
        tf.data.Dataset.from_tensor_slices(list(texts)), vocabulary_size=vocabulary_size
    )


class PairPackingEmbedder(tf.Module):
    """text -> SentencePiece ids -> pack (text, text) -> mean of embeddings -> L2 normalise."""

    def __init__(self, proto):
        import keras_hub

        super().__init__()
        self.tokenizer = keras_hub.tokenizers.SentencePieceTokenizer(proto=proto)
        self.packer = keras_hub.layers.MultiSegmentPacker(
            SEQUENCE_LENGTH, start_value=1, end_value=2, pad_value=0
        )
        vocabulary = self.tokenizer.vocabulary_size()
        self.table = tf.Variable(np.random.default_rng(0).normal(size=(vocabulary, DIM)), dtype=tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        ids = self.tokenizer(text)
        token_ids, _ = self.packer((ids, ids))
        mask = tf.cast(token_ids != 0, tf.float32)[..., None]
        summed = tf.reduce_sum(tf.gather(self.table, token_ids) * mask, axis=1)
        mean = summed / tf.reduce_sum(mask, axis=1)
        return {"embedding": tf.math.l2_normalize(mean, axis=-1)}


def save_pair_packing_model(path, proto):
    """Saves a `PairPackingEmbedder` to `path`; returns the module (for eager reference)."""
    module = PairPackingEmbedder(proto)
    tf.saved_model.save(module, os.fspath(path), signatures={"serving_default": module.serve})
    return module


def rename_op(saved_model_dir, old_op, new_op):
    """Renames every node of type `old_op` inside the graph functions; returns how many."""
    path = os.path.join(os.fspath(saved_model_dir), "saved_model.pb")
    with open(path, "rb") as file:
        saved_model = saved_model_pb2.SavedModel.FromString(file.read())
    renamed = 0
    for function in saved_model.meta_graphs[0].graph_def.library.function:
        for node in function.node_def:
            if node.op == old_op:
                node.op = new_op
                renamed += 1
    with open(path, "wb") as file:
        file.write(saved_model.SerializeToString())
    return renamed


@functools.cache
def damaged_artefacts():
    """Damaged version directories, in one scratch directory that is itself not a SavedModel:
    `graph/1` (a saved_model.pb cut short and truncated metadata) and `empty_graph/1` (an empty
    saved_model.pb)."""
    root = scratch_dir()
    _write(root / "graph" / "1" / "saved_model.pb", b"\x0a\xff\xff\xff")
    _write(root / "graph" / "1" / "assets.extra" / "keras_siamese.json", b'{"embedding_size": 6')
    _write(root / "empty_graph" / "1" / "saved_model.pb", b"")
    return root


def damaged_file(name):
    """`name` inside `damaged_artefacts()`."""
    return damaged_artefacts() / name


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
