"""Small random ALBERTs written in the formats users bring: Hugging Face directories and TF Hub SavedModels.

Also an oracle: features of the keras-hub backbone on texts tokenised by the
`sentencepiece` package and packed by hand, padded to the full length.
"""

import json
import os

import numpy as np
import sentencepiece
import tensorflow as tf
import tensorflow_text as tf_text
from keras_hub.models import AlbertBackbone
from safetensors.numpy import save_file

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


def write_hf_albert(backbone, proto, directory):
    """Writes `backbone` as a Hugging Face AlbertModel directory, named as in transformers' modeling_albert."""
    os.makedirs(directory, exist_ok=True)
    hidden = backbone.hidden_dim
    tensors = {
        "albert.embeddings.word_embeddings.weight": backbone.token_embedding.embeddings,
        "albert.embeddings.position_embeddings.weight": backbone.position_embedding.position_embeddings,
        "albert.embeddings.token_type_embeddings.weight": backbone.segment_embedding.embeddings,
        "albert.embeddings.LayerNorm.weight": backbone.embeddings_layer_norm.gamma,
        "albert.embeddings.LayerNorm.bias": backbone.embeddings_layer_norm.beta,
        "albert.encoder.embedding_hidden_mapping_in.weight": _linear(backbone.embeddings_projection.kernel),
        "albert.encoder.embedding_hidden_mapping_in.bias": backbone.embeddings_projection.bias,
        "albert.pooler.weight": _linear(backbone.pooled_dense.kernel),
        "albert.pooler.bias": backbone.pooled_dense.bias,
    }
    for group, layers in enumerate(backbone.transformer_layers):
        for inner, layer in enumerate(layers):
            prefix = f"albert.encoder.albert_layer_groups.{group}.albert_layers.{inner}."
            attention = layer._self_attention_layer
            for hf_name, dense in [
                ("query", attention.query_dense),
                ("key", attention.key_dense),
                ("value", attention.value_dense),
            ]:
                tensors[f"{prefix}attention.{hf_name}.weight"] = _linear(
                    np.reshape(dense.kernel, (hidden, hidden))
                )
                tensors[f"{prefix}attention.{hf_name}.bias"] = np.reshape(dense.bias, (hidden,))
            tensors[f"{prefix}attention.dense.weight"] = _linear(
                np.reshape(attention.output_dense.kernel, (hidden, hidden))
            )
            tensors[f"{prefix}attention.dense.bias"] = attention.output_dense.bias
            tensors[f"{prefix}attention.LayerNorm.weight"] = layer._self_attention_layer_norm.gamma
            tensors[f"{prefix}attention.LayerNorm.bias"] = layer._self_attention_layer_norm.beta
            tensors[f"{prefix}ffn.weight"] = _linear(layer._feedforward_intermediate_dense.kernel)
            tensors[f"{prefix}ffn.bias"] = layer._feedforward_intermediate_dense.bias
            tensors[f"{prefix}ffn_output.weight"] = _linear(layer._feedforward_output_dense.kernel)
            tensors[f"{prefix}ffn_output.bias"] = layer._feedforward_output_dense.bias
            tensors[f"{prefix}full_layer_layer_norm.weight"] = layer._feedforward_layer_norm.gamma
            tensors[f"{prefix}full_layer_layer_norm.bias"] = layer._feedforward_layer_norm.beta
    save_file(
        {name: np.ascontiguousarray(np.asarray(value, "float32")) for name, value in tensors.items()},
        os.path.join(directory, "model.safetensors"),
    )
    config = {
        "architectures": ["AlbertModel"],
        "model_type": "albert",
        "vocab_size": backbone.vocabulary_size,
        "embedding_size": backbone.embedding_dim,
        "hidden_size": hidden,
        "num_hidden_layers": backbone.num_layers,
        "num_hidden_groups": backbone.num_groups,
        "inner_group_num": backbone.num_inner_repetitions,
        "num_attention_heads": backbone.num_heads,
        "intermediate_size": backbone.intermediate_dim,
        "hidden_act": "gelu_new",
        "attention_probs_dropout_prob": 0.0,
        "hidden_dropout_prob": 0.0,
        "max_position_embeddings": backbone.max_sequence_length,
        "type_vocab_size": backbone.num_segments,
        "layer_norm_eps": 1e-12,
    }
    with open(os.path.join(directory, "config.json"), "w") as file:
        json.dump(config, file)
    with open(os.path.join(directory, "spiece.model"), "wb") as file:
        file.write(proto)
    return directory


def _linear(kernel):
    """A Keras Dense kernel [in, out] as a torch Linear weight [out, in]."""
    return np.transpose(np.asarray(kernel))


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
