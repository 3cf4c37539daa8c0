"""A keras-hub BERT or ALBERT backbone and its tokenizer as a Hugging Face checkpoint: `config.json`,
`model.safetensors` and the tokenizer files, named and shaped as keras-hub's own converters read them
(`keras_hub/src/utils/transformers/convert_bert.py`, `convert_albert.py`), so transformers,
sentence-transformers and keras-hub load the same weights."""

import json
import os

import keras
import keras_hub
import numpy as np

BERT_SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                       "mask_token": "[MASK]"}
ALBERT_SPECIAL_TOKENS = {"unk_token": "<unk>", "sep_token": "[SEP]", "pad_token": "<pad>", "cls_token": "[CLS]",
                         "mask_token": "[MASK]"}


def write_hf_checkpoint(backbone, tokenizer, sequence_length, directory):
    """Writes `backbone` (a keras-hub `BertBackbone` or `AlbertBackbone`) and `tokenizer` into `directory`.

    The configuration says `"hidden_act": "gelu_new"`: keras-hub's BERT and
    ALBERT compute the tanh approximation of GELU, and so does transformers
    with that name. The tokenizer files reproduce the token ids
    `tokenizer` gives (BERT: `vocab.txt` with the lowercasing and accent
    stripping it applies; ALBERT: its SentencePiece model as `spiece.model`).
    Anything else is a `ValueError` saying the format cannot express it.

    Example:
    >>> write_hf_checkpoint(encoder.backbone, encoder.tokenizer, 128, "out")  # doctest: +SKIP
    """
    from safetensors.numpy import save_file

    if isinstance(backbone, keras_hub.models.AlbertBackbone):
        config, weights, special = _albert_config(backbone, tokenizer), _albert_weights(backbone), ALBERT_SPECIAL_TOKENS
        with open(os.path.join(directory, "spiece.model"), "wb") as file:
            file.write(tokenizer.proto)
        tokenizer_config = {"tokenizer_class": "AlbertTokenizer", "do_lower_case": False, "keep_accents": True,
                            "remove_space": True}
    elif isinstance(backbone, keras_hub.models.BertBackbone):
        config, weights, special = _bert_config(backbone, tokenizer), _bert_weights(backbone), BERT_SPECIAL_TOKENS
        with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8") as file:
            file.write("\n".join(tokenizer.get_vocabulary()) + "\n")
        tokenizer_config = {"tokenizer_class": "BertTokenizer", "do_lower_case": bool(tokenizer.lowercase),
                            "strip_accents": bool(tokenizer.strip_accents),
                            "tokenize_chinese_chars": bool(tokenizer.split_on_cjk)}
    else:
        raise ValueError(
            f"A Hugging Face checkpoint can be written for BERT-family and ALBERT backbones, not "
            f"{type(backbone).__name__}."
        )
    write_json(os.path.join(directory, "config.json"), config)
    save_file(weights, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    write_json(os.path.join(directory, "tokenizer_config.json"),
               {**tokenizer_config, "model_max_length": sequence_length, **special})
    write_json(os.path.join(directory, "special_tokens_map.json"), special)


def write_json(path, content):
    """`content` as indented JSON in `path` (its directory made if needed)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(content, file, indent=2, ensure_ascii=False)
        file.write("\n")


def numpy_of(variable):
    """A Keras variable's value as a float32 numpy array."""
    return np.asarray(keras.ops.convert_to_numpy(variable), np.float32)


def torch_linear(layer):
    """`{"weight": [out, in], "bias": [out]}` of a Keras `Dense` layer, as torch's `Linear` holds them."""
    return {"weight": np.ascontiguousarray(numpy_of(layer.kernel).T), "bias": numpy_of(layer.bias)}


def _common_config(backbone, tokenizer):
    return {
        "vocab_size": backbone.vocabulary_size, "hidden_size": backbone.hidden_dim,
        "num_hidden_layers": backbone.num_layers, "num_attention_heads": backbone.num_heads,
        "intermediate_size": backbone.intermediate_dim, "hidden_act": "gelu_new",
        "hidden_dropout_prob": backbone.dropout, "attention_probs_dropout_prob": backbone.dropout,
        "max_position_embeddings": backbone.max_sequence_length, "type_vocab_size": backbone.num_segments,
        "layer_norm_eps": 1e-12, "initializer_range": 0.02, "pad_token_id": tokenizer.pad_token_id,
        "position_embedding_type": "absolute",
    }


def _bert_config(backbone, tokenizer):
    return {"architectures": ["BertModel"], "model_type": "bert", **_common_config(backbone, tokenizer)}


def _albert_config(backbone, tokenizer):
    return {
        "architectures": ["AlbertModel"], "model_type": "albert", **_common_config(backbone, tokenizer),
        "embedding_size": backbone.embedding_dim, "num_hidden_groups": backbone.num_groups,
        "inner_group_num": backbone.num_inner_repetitions, "classifier_dropout_prob": 0.1,
        "bos_token_id": tokenizer.cls_token_id, "eos_token_id": tokenizer.sep_token_id,
    }


def _bert_weights(backbone):
    weights = {
        "embeddings.word_embeddings.weight": numpy_of(backbone.get_layer("token_embedding").embeddings),
        "embeddings.position_embeddings.weight": numpy_of(backbone.get_layer("position_embedding").position_embeddings),
        "embeddings.token_type_embeddings.weight": numpy_of(backbone.get_layer("segment_embedding").embeddings),
        **_layer_norm(backbone.get_layer("embeddings_layer_norm"), "embeddings.LayerNorm"),
        **_dense(backbone.get_layer("pooled_dense"), "pooler.dense"),
    }
    for index in range(backbone.num_layers):
        block, prefix = backbone.get_layer(f"transformer_layer_{index}"), f"encoder.layer.{index}."
        weights.update(_attention(block._self_attention_layer, prefix + "attention.self.", prefix + "attention.output.dense"))
        weights.update(_layer_norm(block._self_attention_layer_norm, prefix + "attention.output.LayerNorm"))
        weights.update(_dense(block._feedforward_intermediate_dense, prefix + "intermediate.dense"))
        weights.update(_dense(block._feedforward_output_dense, prefix + "output.dense"))
        weights.update(_layer_norm(block._feedforward_layer_norm, prefix + "output.LayerNorm"))
    return weights


def _albert_weights(backbone):
    # keras-hub reads ALBERT tensors under the "albert." prefix; transformers strips it.
    weights = {
        "albert.embeddings.word_embeddings.weight": numpy_of(backbone.token_embedding.embeddings),
        "albert.embeddings.position_embeddings.weight": numpy_of(backbone.position_embedding.position_embeddings),
        "albert.embeddings.token_type_embeddings.weight": numpy_of(backbone.segment_embedding.embeddings),
        **_layer_norm(backbone.embeddings_layer_norm, "albert.embeddings.LayerNorm"),
        **_dense(backbone.embeddings_projection, "albert.encoder.embedding_hidden_mapping_in"),
        **_dense(backbone.pooled_dense, "albert.pooler"),
    }
    for group in range(backbone.num_groups):
        for inner in range(backbone.num_inner_repetitions):
            layer = backbone.get_layer(f"group_{group}_inner_layer_{inner}")
            prefix = f"albert.encoder.albert_layer_groups.{group}.albert_layers.{inner}."
            weights.update(_attention(layer._self_attention_layer, prefix + "attention.", prefix + "attention.dense"))
            weights.update(_layer_norm(layer._self_attention_layer_norm, prefix + "attention.LayerNorm"))
            weights.update(_dense(layer._feedforward_intermediate_dense, prefix + "ffn"))
            weights.update(_dense(layer._feedforward_output_dense, prefix + "ffn_output"))
            weights.update(_layer_norm(layer._feedforward_layer_norm, prefix + "full_layer_layer_norm"))
    return weights


def _attention(attention, prefix, output_name):
    """Query, key, value kernels `[hidden, heads, head_dim]` -> `[heads * head_dim, hidden]`; the output
    kernel `[heads, head_dim, hidden]` -> `[hidden, heads * head_dim]`."""
    weights = {}
    for name, dense in (("query", attention.query_dense), ("key", attention.key_dense), ("value", attention.value_dense)):
        kernel = numpy_of(dense.kernel)
        weights[f"{prefix}{name}.weight"] = np.ascontiguousarray(kernel.reshape(kernel.shape[0], -1).T)
        weights[f"{prefix}{name}.bias"] = numpy_of(dense.bias).reshape(-1)
    kernel = numpy_of(attention.output_dense.kernel)
    weights[f"{output_name}.weight"] = np.ascontiguousarray(kernel.reshape(-1, kernel.shape[-1]).T)
    weights[f"{output_name}.bias"] = numpy_of(attention.output_dense.bias)
    return weights


def _layer_norm(layer, name):
    return {f"{name}.weight": numpy_of(layer.gamma), f"{name}.bias": numpy_of(layer.beta)}


def _dense(layer, name):
    return {f"{name}.{key}": value for key, value in torch_linear(layer).items()}
