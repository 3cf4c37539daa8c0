"""`SentenceEmbedder` presets: keras-hub's preset layout with our head beside it, and sentence-transformers
directories read in (pooling, Dense, Normalize modules and prompts)."""

import json
import os

import keras
import numpy as np

HEAD_CONFIG = "sentence_embedder.json"
HEAD_WEIGHTS = "sentence_embedder.weights.h5"
_ST_POOLING = {"mean": "mean", "mean_tokens": "mean", "cls": "cls", "cls_token": "cls", "max": "max",
               "max_tokens": "max", "mean_sqrt_len_tokens": "mean_sqrt_len"}
_TORCH_ACTIVATIONS = {"ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "GELU": "gelu", "SiLU": "silu",
                      "ELU": "elu", "SELU": "selu", "Softplus": "softplus", "Identity": None}


def save_preset(model, directory):
    """Writes `model` (a `SentenceEmbedder.from_encoder` model of a keras-hub encoder) as a preset.

    keras-hub's files (the backbone's `config.json`, `model.weights.h5`,
    `metadata.json`; the tokenizer's `tokenizer.json` and assets), so
    `keras_hub.upload_preset` publishes it and keras-hub loads its backbone;
    beside them `sentence_embedder.json` (encoder settings, pooling, head,
    normalisation, prompts) and `sentence_embedder.weights.h5` (the head's
    weights), and a model card. Written atomically; `directory` must not
    exist or be empty.
    """
    from keras_siamese.atomic import atomic_directory
    from keras_siamese.export.model_card import write_model_card
    from keras_siamese.layers import TextEncoder

    parts = model.parts()
    if not isinstance(parts.encoder, TextEncoder):
        raise ValueError(f"A keras-hub preset holds a keras-hub backbone; {type(parts.encoder).__name__} is not one.")
    encoder, projection = parts.encoder, parts.projection
    head = {
        "encoder": type(encoder).__name__,
        "sequence_length": encoder.sequence_length, "pooling": parts.pooling.mode, "normalize": parts.normalize,
        "prompts": model.prompts,
        "projection": None if projection is None else {key: projection.get_config()[key] for key in (
            "output_units", "hidden_units", "activation", "dropout")},
    }
    with atomic_directory(directory) as partial:
        encoder.backbone.save_to_preset(partial)
        encoder.tokenizer.save_to_preset(partial)
        with open(os.path.join(partial, HEAD_CONFIG), "w", encoding="utf-8") as file:
            json.dump(head, file, indent=2, ensure_ascii=False)
        if projection is not None:
            keras.saving.save_weights(model, os.path.join(partial, HEAD_WEIGHTS),
                                      objects_to_skip=[encoder])
        write_model_card(partial, model, _preset_usage(type(model).__name__))
    return os.fspath(directory)


def load_preset(cls, directory, **kwargs):
    """A `cls` (a `SentenceEmbedder` class) from a preset `save_preset` wrote, or from a
    sentence-transformers directory; other arguments go to `cls.from_encoder`."""
    directory = os.fspath(directory)
    if os.path.isfile(os.path.join(directory, HEAD_CONFIG)):
        return _load_keras_siamese_preset(cls, directory, **kwargs)
    if os.path.isfile(os.path.join(directory, "modules.json")):
        return _load_sentence_transformers(cls, directory, **kwargs)
    raise ValueError(
        f"{directory} is neither a keras_siamese preset ({HEAD_CONFIG}) nor a sentence-transformers directory "
        "(modules.json); load a bare keras-hub or Hugging Face encoder with TextEncoder.from_preset."
    )


def _load_keras_siamese_preset(cls, directory, **kwargs):
    import keras_hub

    from keras_siamese.layers import AlbertEncoder, TextEncoder

    with open(os.path.join(directory, HEAD_CONFIG), encoding="utf-8") as file:
        head = json.load(file)
    encoder_class = {"TextEncoder": TextEncoder, "AlbertEncoder": AlbertEncoder}[head["encoder"]]
    encoder = encoder_class(keras_hub.models.Backbone.from_preset(directory),
                            keras_hub.models.Tokenizer.from_preset(directory), sequence_length=head["sequence_length"])
    projection = head["projection"] or {}
    model = cls.from_encoder(
        encoder, pooling=head["pooling"], output_units=projection.get("output_units"),
        hidden_units=tuple(projection.get("hidden_units", ())), activation=projection.get("activation", "relu"),
        normalize=head["normalize"], prompts=head["prompts"], **kwargs,
    )
    if projection:
        keras.saving.load_weights(model, os.path.join(directory, HEAD_WEIGHTS),
                                  objects_to_skip=[encoder])
    return model


def _load_sentence_transformers(cls, directory, **kwargs):
    """Transformer -> Pooling -> Dense ... -> Normalize, as `from_encoder` builds it."""
    from keras_siamese.layers import TextEncoder

    with open(os.path.join(directory, "modules.json"), encoding="utf-8") as file:
        modules = json.load(file)
    kinds = [module["type"].rsplit(".", 1)[-1] for module in modules]
    for module, kind in zip(modules, kinds):
        if kind not in ("Transformer", "Pooling", "Dense", "Normalize"):
            raise ValueError(f"{directory}: cannot read the sentence-transformers module {module['type']} "
                             "(keras_siamese reads Transformer, Pooling, Dense and Normalize).")
    if kinds[:2] != ["Transformer", "Pooling"] or "Transformer" in kinds[1:] or "Pooling" in kinds[2:]:
        raise ValueError(f"{directory}: expected a Transformer, a Pooling, Dense modules and a Normalize, "
                         f"got {kinds}.")
    transformer = os.path.join(directory, modules[0]["path"])
    encoder = TextEncoder.from_preset(transformer, sequence_length=_max_seq_length(transformer))
    pooling = _pooling(os.path.join(directory, modules[1]["path"]))
    denses = [_dense(os.path.join(directory, module["path"])) for module, kind in zip(modules, kinds)
              if kind == "Dense"]
    if pooling == "cls" and denses and _is_pooler(denses[0], encoder):
        pooling, (kernel, bias, _) = "pooled", denses.pop(0)
        encoder.backbone.pooled_dense.set_weights([kernel, bias])
    head = _projection(directory, denses)
    model = cls.from_encoder(encoder, pooling=pooling, normalize="Normalize" in kinds,
                             prompts=_prompts(directory), **head, **kwargs)
    if denses:
        projection = model.parts().projection
        layers = [layer for layer in projection.hidden_layers if isinstance(layer, keras.layers.Dense)]
        for layer, (kernel, bias, _) in zip(layers + [projection.output_layer], denses):
            layer.set_weights([kernel, bias])
    return model


def _max_seq_length(transformer):
    """sentence-transformers' `max_seq_length` of the Transformer module ([CLS] and [SEP] included)."""
    for name, key in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length")):
        path = os.path.join(transformer, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as file:
                value = json.load(file).get(key)
            if isinstance(value, int) and value < 100_000:
                return value
    return 512


def _pooling(path):
    with open(os.path.join(path, "config.json"), encoding="utf-8") as file:
        config = json.load(file)
    modes = config.get("pooling_mode")
    modes = [modes] if isinstance(modes, str) else list(modes or []) or [
        key.removeprefix("pooling_mode_") for key, value in config.items() if key.startswith("pooling_mode_") and value]
    if len(modes) != 1 or modes[0] not in _ST_POOLING:
        raise ValueError(f"{path}: cannot read the pooling {modes or 'none'} (keras_siamese pools by one of "
                         "mean, cls, max, mean_sqrt_len_tokens).")
    return _ST_POOLING[modes[0]]


def _dense(path):
    """(kernel [in, out], bias [out], activation name) of a sentence-transformers Dense module."""
    from safetensors.numpy import load_file

    with open(os.path.join(path, "config.json"), encoding="utf-8") as file:
        config = json.load(file)
    activation_name = config.get("activation_function", "torch.nn.modules.activation.Tanh").rsplit(".", 1)[-1]
    if activation_name not in _TORCH_ACTIVATIONS or not config.get("bias", True):
        raise ValueError(f"{path}: cannot read a Dense module with activation {config.get('activation_function')} "
                         f"and bias={config.get('bias', True)}.")
    weights_path = os.path.join(path, "model.safetensors")
    if not os.path.isfile(weights_path):
        raise ValueError(f"{path}: keras_siamese reads Dense weights from model.safetensors (no torch needed); "
                         "resave the model with a recent sentence-transformers.")
    weights = load_file(weights_path)
    return np.ascontiguousarray(weights["linear.weight"].T), weights["linear.bias"], _TORCH_ACTIVATIONS[activation_name]


def _is_pooler(dense, encoder):
    """Whether a Dense module is a BERT-style pooler: tanh, hidden -> hidden, right after [CLS] pooling."""
    kernel, _, activation = dense
    return activation == "tanh" and kernel.shape == (encoder.hidden_dim, encoder.hidden_dim) and encoder.has_pooler


def _projection(directory, denses):
    """`from_encoder`'s head arguments for Dense modules: hidden layers of one activation, a linear last."""
    if not denses:
        return {}
    activations = {activation for _, _, activation in denses[:-1]}
    if denses[-1][2] is not None or len(activations) > 1 or None in activations:
        raise ValueError(f"{directory}: keras_siamese's Projection is Dense layers of one activation ending in a "
                         f"linear one; these Dense modules have {[a for _, _, a in denses]}.")
    return {"output_units": int(denses[-1][0].shape[1]), "hidden_units": tuple(int(k.shape[1]) for k, _, _ in denses[:-1]),
            "activation": activations.pop() if activations else "relu"}


def _prompts(directory):
    """The non-empty prompts of `config_sentence_transformers.json` (sentence-transformers 6 writes empty
    `query` and `document` ones by default), or None."""
    path = os.path.join(directory, "config_sentence_transformers.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as file:
        prompts = {name: text for name, text in (json.load(file).get("prompts") or {}).items() if text}
    return prompts or None


def _preset_usage(class_name):
    return f"""```python
import keras_siamese
from keras_siamese.models import {class_name}

model = {class_name}.from_preset("path/to/this/directory")
embeddings = model.encode(["a text", "another text"])
```"""
