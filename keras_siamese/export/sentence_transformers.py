"""A `SentenceEmbedder` as a sentence-transformers model directory: what `SentenceTransformer(directory)`
loads (and Text Embeddings Inference, LangChain and LlamaIndex wrappers, MTEB)."""

import os

import keras

from keras_siamese.atomic import atomic_directory
from keras_siamese.export.hf_checkpoint import torch_linear, write_hf_checkpoint, write_json
from keras_siamese.export.model_card import write_model_card

# keras_siamese pooling -> sentence-transformers' Pooling flag; "pooled" is [CLS] then the pooler's Dense(tanh).
POOLING_FLAGS = {"mean": "mean_tokens", "cls": "cls_token", "max": "max_tokens",
                 "mean_sqrt_len": "mean_sqrt_len_tokens", "pooled": "cls_token"}
TORCH_ACTIVATIONS = {
    "relu": "torch.nn.modules.activation.ReLU", "tanh": "torch.nn.modules.activation.Tanh",
    "sigmoid": "torch.nn.modules.activation.Sigmoid", "gelu": "torch.nn.modules.activation.GELU",
    "silu": "torch.nn.modules.activation.SiLU", "swish": "torch.nn.modules.activation.SiLU",
    "elu": "torch.nn.modules.activation.ELU", "selu": "torch.nn.modules.activation.SELU",
    "softplus": "torch.nn.modules.activation.Softplus", "linear": "torch.nn.modules.linear.Identity",
    None: "torch.nn.modules.linear.Identity",
}
# Module type names every sentence-transformers release from 2.x to 6.x resolves.
_MODULE_TYPES = {name: f"sentence_transformers.models.{name}" for name in ("Transformer", "Pooling", "Dense", "Normalize")}


def export_sentence_transformers(model, directory, prompts=None, default_prompt_name=None, facts=None):
    """Writes `model` as a sentence-transformers directory and returns its path.

    `SentenceTransformer(directory).encode(texts)` then gives this model's
    embeddings (to float rounding): the Hugging Face checkpoint of its BERT
    or ALBERT encoder (`keras_siamese.export.hf_checkpoint`), a `Pooling`
    module, one `Dense` module per layer of the projection head (the
    `"pooled"` mode is [CLS] pooling and the encoder's pooler as a
    Dense(tanh)), a `Normalize` module when the model normalises, and the
    prompts (`prompts`, default the model's own, with `default_prompt_name`)
    for `encode(prompt_name=...)`, `encode_query` and `encode_document`. A
    model card (README.md, with `facts` as `write_model_card` takes them)
    comes with it.

    `directory` must not exist, or be empty; it is written under a hidden
    name beside it and renamed into place when complete. A model the format
    cannot express (a TF Hub SavedModel encoder, a backbone other than BERT
    or ALBERT, layers other than the encoder, `Pooling`, `Projection` and
    `L2Normalize`) is a `ValueError` before anything is written.

    Example:
    >>> export_sentence_transformers(model, "exports/faq-minilm")  # doctest: +SKIP
    'exports/faq-minilm'
    >>> SentenceTransformer("exports/faq-minilm").encode(["how do I pay"])  # doctest: +SKIP
    """
    encoder, pooling, projection, normalize = _parts(model)
    prompts = dict(getattr(model, "prompts", None) or {}) if prompts is None else dict(prompts)
    if default_prompt_name is not None and default_prompt_name not in prompts:
        raise ValueError(f"default_prompt_name {default_prompt_name!r} is not one of the prompts {sorted(prompts)}.")
    denses = _dense_layers(encoder, pooling, projection)
    with atomic_directory(directory) as partial:
        write_hf_checkpoint(encoder.backbone, encoder.tokenizer, encoder.sequence_length, partial)
        write_json(os.path.join(partial, "sentence_bert_config.json"),
                   {"max_seq_length": encoder.sequence_length, "do_lower_case": False})
        modules = [("Transformer", "")]
        flag = POOLING_FLAGS[pooling.mode]
        write_json(os.path.join(partial, "1_Pooling", "config.json"), {
            "word_embedding_dimension": encoder.hidden_dim,
            **{f"pooling_mode_{name}": name == flag for name in sorted(set(POOLING_FLAGS.values()))},
        })
        modules.append(("Pooling", "1_Pooling"))
        for layer, activation in denses:
            path = f"{len(modules)}_Dense"
            _write_dense(os.path.join(partial, path), layer, activation)
            modules.append(("Dense", path))
        if normalize:
            modules.append(("Normalize", f"{len(modules)}_Normalize"))
        write_json(os.path.join(partial, "modules.json"), [
            {"idx": index, "name": str(index), "path": path, "type": _MODULE_TYPES[kind]}
            for index, (kind, path) in enumerate(modules)
        ])
        write_json(os.path.join(partial, "config_sentence_transformers.json"), {
            "model_type": "SentenceTransformer", "prompts": prompts, "default_prompt_name": default_prompt_name,
            "similarity_fn_name": "cosine",
        })
        write_model_card(partial, model, _usage(os.path.basename(os.path.abspath(directory)), prompts), facts)
    return os.fspath(directory)


def _parts(model):
    """`model.parts()` of a model sentence-transformers can express: a `TextEncoder`'s."""
    from keras_siamese.layers import TextEncoder

    parts_of = getattr(model, "parts", None)
    if parts_of is None:
        raise ValueError(f"export_sentence_transformers takes a SentenceEmbedder, got {type(model).__name__}.")
    try:
        parts = parts_of()
    except ValueError as error:
        raise ValueError(f"sentence-transformers cannot express this model: {error}") from None
    if not isinstance(parts.encoder, TextEncoder):
        raise ValueError(f"sentence-transformers cannot load a {type(parts.encoder).__name__} (a TF Hub SavedModel "
                         "encoder); export a model of a TextEncoder or AlbertEncoder.")
    return parts


def _dense_layers(encoder, pooling, projection):
    """[(Dense layer, activation)] after the pooling, in order; an activation torch has not is a `ValueError`."""
    layers = [(encoder.backbone.pooled_dense, "tanh")] if pooling.mode == "pooled" else []
    if projection is not None:
        if projection.activation not in TORCH_ACTIVATIONS:
            raise ValueError(f"sentence-transformers' Dense has no activation {projection.activation!r}; "
                             f"it takes {sorted(name for name in TORCH_ACTIVATIONS if name)}.")
        layers += [(layer, projection.activation) for layer in projection.hidden_layers
                   if isinstance(layer, keras.layers.Dense)]
        layers.append((projection.output_layer, None))
    return layers


def _write_dense(path, layer, activation):
    from safetensors.numpy import save_file

    linear = torch_linear(layer)
    write_json(os.path.join(path, "config.json"), {
        "in_features": int(linear["weight"].shape[1]), "out_features": int(linear["weight"].shape[0]), "bias": True,
        "activation_function": TORCH_ACTIVATIONS[activation],
    })
    save_file({f"linear.{key}": value for key, value in linear.items()}, os.path.join(path, "model.safetensors"))


def _usage(name, prompts):
    lines = ["```python", "from sentence_transformers import SentenceTransformer", "",
             f'model = SentenceTransformer("path/to/{name}")', 'embeddings = model.encode(["a text", "another text"])']
    for prompt_name in prompts:
        lines.append(f'{prompt_name}_embeddings = model.encode(["a text"], prompt_name="{prompt_name}")')
    return "\n".join(lines + ["```"])
