"""Small random ALBERTs written in the format users bring from TF Hub: SavedModels (Hugging Face directories:
keras_siamese.export.hf_checkpoint).

Also an oracle: features of the keras-hub backbone on texts tokenised by the
`sentencepiece` package and packed by hand, padded to the full length.
"""

import os

import numpy as np
import sentencepiece
import tensorflow as tf
import tensorflow_text as tf_text
from keras_hub.models import AlbertBackbone

from keras_siamese.layers import train_sentencepiece

CLS_ID, SEP_ID, PAD_ID = 2, 3, 0


def wordnet_glosses(count, offset=0):
    """`count` glosses of /usr/share/wordnet/data.noun, from the `offset`-th on."""
    glosses = []
    with open("/usr/share/wordnet/data.noun", encoding="utf-8") as file:
        for line in file:
            if line.startswith("  ") or " | " not in line:
                continue
            glosses.append(line.split(" | ", 1)[1].strip())
            if len(glosses) == offset + count:
                break
    return glosses[offset:]


def random_albert(corpus, num_layers=2, num_groups=1, seed=0):
    """A small ALBERT with every weight random (no zero biases to hide a mix-up) and its SentencePiece proto."""
    proto = train_sentencepiece(corpus, vocabulary_size=300)
    vocabulary_size = sentencepiece.SentencePieceProcessor(model_proto=proto).vocab_size()
    backbone = AlbertBackbone(
        vocabulary_size=vocabulary_size,
        num_layers=num_layers,
        num_groups=num_groups,
        num_heads=2,
        embedding_dim=16,
        hidden_dim=32,
        intermediate_dim=64,
        dropout=0.0,
        max_sequence_length=64,
    )
    rng = np.random.default_rng(seed)
    for weight in backbone.weights:
        weight.assign(rng.normal(0.0, 0.2, weight.shape).astype("float32"))
    return backbone, proto


def reference_features(backbone, proto, texts, sequence_length):
    """The backbone's outputs on `[CLS] pieces [SEP]` padded to `sequence_length` (numpy)."""
    processor = sentencepiece.SentencePieceProcessor(model_proto=proto)
    token_ids = np.full((len(texts), sequence_length), PAD_ID, dtype="int32")
    for row, text in enumerate(texts):
        pieces = [CLS_ID] + processor.encode(text)[: sequence_length - 2] + [SEP_ID]
        token_ids[row, : len(pieces)] = pieces
    padding_mask = (np.arange(sequence_length)[None, :] < (token_ids != PAD_ID).sum(1)[:, None])
    outputs = backbone.predict(
        {
            "token_ids": token_ids,
            "segment_ids": np.zeros_like(token_ids),
            "padding_mask": padding_mask.astype("int32"),
        },
        verbose=0,
    )
    outputs["padding_mask"] = padding_mask
    return outputs


class _TFHubEncoder(tf.Module):
    """TF Hub's text-encoder interface around a keras-hub backbone, with its SentencePiece asset."""

    def __init__(self, backbone, sp_model_path):
        super().__init__()
        self.backbone = backbone
        self.sp_model_file = tf.saved_model.Asset(sp_model_path)

    @tf.function
    def __call__(self, inputs, training=False):
        outputs = self.backbone(
            {
                "token_ids": inputs["input_word_ids"],
                "segment_ids": inputs["input_type_ids"],
                "padding_mask": inputs["input_mask"],
            },
            training=training,
        )
        return {
            "pooled_output": outputs["pooled_output"],
            "sequence_output": outputs["sequence_output"],
        }


class _TFHubPreprocessor(tf.Module):
    """TF Hub's preprocessor interface: `tokenize` and `bert_pack_inputs`, with TF Text ops."""

    def __init__(self, proto):
        super().__init__()
        self._tokenizer = tf_text.SentencepieceTokenizer(model=proto, out_type=tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, texts):
        return self._tokenizer.tokenize(texts)

    @tf.function(
        input_signature=[
            [tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1)],
            tf.TensorSpec([], tf.int32),
        ]
    )
    def bert_pack_inputs(self, segments, seq_length):
        tokens = segments[0][:, : seq_length - 2]
        edge = tf.RaggedTensor.from_tensor(tf.ones([tokens.nrows(), 1], tf.int32))
        ids = tf.concat([edge * CLS_ID, tokens, edge * SEP_ID], axis=1)
        shape = tf.stack([tokens.nrows(), tf.cast(seq_length, tf.int64)])
        word_ids = ids.to_tensor(default_value=PAD_ID, shape=shape)
        mask = tf.ones_like(ids).to_tensor(default_value=0, shape=shape)
        return {
            "input_word_ids": word_ids,
            "input_mask": mask,
            "input_type_ids": tf.zeros_like(word_ids),
        }


def write_tfhub_albert(backbone, proto, encoder_dir, preprocessor_dir):
    """Writes `backbone` as a TF Hub-style encoder SavedModel and `proto` as its preprocessor."""
    os.makedirs(encoder_dir, exist_ok=True)
    sp_model_path = os.path.join(os.path.dirname(encoder_dir), "spiece.model")
    with open(sp_model_path, "wb") as file:
        file.write(proto)
    encoder = _TFHubEncoder(backbone, sp_model_path)
    spec = {
        name: tf.TensorSpec([None, None], tf.int32, name=name)
        for name in ("input_word_ids", "input_mask", "input_type_ids")
    }
    for training in (False, True):
        encoder.__call__.get_concrete_function(spec, training=training)
    tf.saved_model.save(encoder, encoder_dir)
    tf.saved_model.save(_TFHubPreprocessor(proto), preprocessor_dir)
    return encoder_dir, preprocessor_dir
