"""Freezing a keras-hub transformer backbone: all of it, or its embeddings plus the lowest N layers."""

from keras_siamese.checks import is_integer

FREEZE_ALL = "all"


def freeze_backbone(backbone, frozen_layers=FREEZE_ALL):
    """Marks the lower part of a keras-hub text backbone non-trainable.

    Args:
        backbone: a keras-hub backbone with `transformer_layers` (BERT, ALBERT,
            RoBERTa, DistilBERT, ...).
        frozen_layers: `"all"` freezes the whole backbone; an integer `n`
            freezes the embeddings and the lowest `n` transformer layers and
            leaves the layers above them, and the pooler, trainable (`0`
            freezes the embeddings only).

    ALBERT shares one set of weights between the layers of a group (all
    layers, for the released checkpoints), so `n` must end on a group
    boundary: a layer cannot be frozen while the layer above trains the same
    weights.

    Example:
    >>> import keras_hub
    >>> backbone = keras_hub.models.BertBackbone(vocabulary_size=100,
    ...     num_layers=4, num_heads=2, hidden_dim=16, intermediate_dim=32)
    >>> freeze_backbone(backbone, 2)
    >>> [layer.trainable for layer in backbone.transformer_layers]
    [False, False, True, True]
    """
    if frozen_layers == FREEZE_ALL:
        backbone.trainable = False
        return
    depth = transformer_layers_by_depth(backbone)
    if not is_integer(frozen_layers) or not 0 <= frozen_layers <= len(depth):
        raise ValueError(
            f"frozen_layers must be 'all' or an integer from 0 to {len(depth)} "
            f"(the backbone's depth), got {frozen_layers!r}."
        )
    frozen = {id(layer) for layer in depth[:frozen_layers]}
    trained = {id(layer) for layer in depth[frozen_layers:]}
    if frozen & trained:
        raise ValueError(
            f"Cannot freeze the lowest {frozen_layers} layers: layers above them "
            "share their weights (ALBERT layer groups). Freeze a whole number "
            f"of groups of {len(depth) // backbone.num_groups} layers, or 'all'."
        )
    backbone.trainable = True
    first_transformer = min(
        index for index, layer in enumerate(backbone.layers) if id(layer) in frozen | trained
    )
    for index, layer in enumerate(backbone.layers):
        is_embedding = index < first_transformer
        layer.trainable = not (is_embedding or id(layer) in frozen)


def transformer_layers_by_depth(backbone):
    """The transformer layer applied at each depth, lowest first (shared layers repeat)."""
    layers = getattr(backbone, "transformer_layers", None)
    if not layers:
        raise ValueError(
            f"{type(backbone).__name__} has no `transformer_layers`; only the "
            "whole backbone can be frozen (frozen_layers='all')."
        )
    if not isinstance(layers[0], (list, tuple)):
        return list(layers)
    # ALBERT: groups of inner layers, each group applied num_layers // num_groups times.
    calls_per_group = backbone.num_layers // len(layers)
    return [
        layer
        for group in layers
        for _ in range(calls_per_group)
        for layer in group
    ]
