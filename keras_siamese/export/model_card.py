"""The model card (README.md) written beside every export: what the model is, how it was trained, how
well it does against the encoder it started from, and how to call it."""

import os

from keras_siamese.export.metadata import all_layers, describe_model


def write_model_card(directory, model, usage, facts=None):
    """Writes `directory/README.md` for `model` and returns its path.

    The card says the encoder (backbone, layers, hidden size, sequence
    length), the head (pooling, projection, normalisation), the embedding
    size, the prompts, then whatever `facts` holds (the main job passes its
    loss and settings, the data's size and shape, the held-out metrics beside
    the untrained encoder's, the precision and Matryoshka dims), the
    keras_siamese version, and `usage`: markdown saying how to call this
    format.

    Example:
    >>> write_model_card("serving/faq/1", model, "curl ...", {"loss": "mnrl"})  # doctest: +SKIP
    'serving/faq/1/README.md'
    """
    import keras_siamese

    facts = facts or {}
    described = describe_model(model)
    lines = [f"# {facts.get('model_name', getattr(model, 'name', 'model'))}", "",
             "A sentence-embedding model trained with [keras_siamese](https://pypi.org/project/keras-siamese/) "
             f"{keras_siamese.__version__}: texts in, {described['embedding_size']}-dimensional "
             f"{'unit-length ' if described['normalized'] else ''}embeddings out.", "", "## Model", "",
             "| | |", "|---|---|"]
    rows = {"encoder": _encoder_line(model), "pooling": described["pooling"],
            "projection head": _projection_line(model), "L2-normalised": "yes" if described["normalized"] else "no",
            "embedding size": described["embedding_size"], "sequence length": described["sequence_length"],
            "prompts": _prompts_line(getattr(model, "prompts", None))}
    rows.update({name: facts[key] for key, name in (("matryoshka_dims", "Matryoshka dims"), ("precision", "precision"))
                 if facts.get(key)})
    lines += [f"| {name} | {value} |" for name, value in rows.items() if value not in (None, "")]
    if "loss" in facts or "data" in facts:
        lines += ["", "## Training", ""]
        if "data" in facts:
            lines.append(f"- data: {facts['data']}")
        if "loss" in facts:
            lines.append(f"- loss: `{facts['loss']}`" + (f", settings {facts['settings']}" if facts.get("settings") else ""))
    if "held_out" in facts:
        lines += ["", "## Held-out quality", "", "| metric | this model | untrained encoder |", "|---|---:|---:|"]
        baseline = facts.get("untrained_encoder", {})
        lines += [f"| {name} | {value:.4f} | {_number(baseline.get(name))} |" for name, value in facts["held_out"].items()]
    if facts.get("duplicate_threshold"):
        threshold = facts["duplicate_threshold"]
        lines += ["", f"Duplicates: cosine >= {threshold['threshold']:.4f} (held-out F1 {threshold['f1']:.3f})."]
    lines += ["", "## Use", "", usage.strip(), ""]
    path = os.path.join(os.fspath(directory), "README.md")
    with open(path, "w", encoding="utf-8") as file:
        file.write("\n".join(lines))
    return path


def _encoder_line(model):
    from keras_siamese.layers import Encoder

    for layer in all_layers(model):
        if isinstance(layer, Encoder):
            backbone = getattr(layer, "backbone", None)
            if backbone is None:
                return type(layer).__name__
            return (f"{type(backbone).__name__}: {backbone.num_layers} layers, hidden size {backbone.hidden_dim}, "
                    f"vocabulary {backbone.vocabulary_size}")
    return None


def _projection_line(model):
    from keras_siamese.layers import Projection

    for layer in all_layers(model):
        if isinstance(layer, Projection):
            return " -> ".join([f"Dense({units}, {layer.activation})" for units in layer.hidden_units]
                               + [f"Dense({layer.output_units})"])
    return "none"


def _prompts_line(prompts):
    if not prompts:
        return None
    return ", ".join(f"`{name}`: {text!r}" for name, text in prompts.items())


def _number(value):
    return "" if value is None else f"{value:.4f}"
