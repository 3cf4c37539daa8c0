"""A small JSON description of an exported embedding model, kept in `assets.extra`.

TF Serving ignores `assets.extra/` except for its warmup file, so clients and
operators can read there what the served vectors are: their size, pooling,
whether they are L2-normalised, the token budget per text, and which
keras_siamese and TensorFlow versions wrote them.
"""

import json
import os

from keras_siamese.artifacts import reading
from keras_siamese.atomic import atomic_file_path

METADATA_FILE = os.path.join("assets.extra", "keras_siamese.json")


def describe_model(model):
    """Embedding size, pooling, normalisation and sequence length of a Keras embedding model.

    Read from the model's output shape and its layers, anywhere in the model:
    the last `Pooling`'s mode, whether an `L2Normalize` is there, and the first
    `Encoder`'s sequence length; None where there is no such layer.

    Example:
    >>> import keras
    >>> from keras_siamese.layers import L2Normalize
    >>> inputs = keras.Input(shape=(3,))
    >>> describe_model(keras.Model(inputs, L2Normalize()(keras.layers.Dense(4)(inputs))))
    {'embedding_size': 4, 'pooling': None, 'normalized': True, 'sequence_length': None}
    """
    from keras_siamese.layers import Encoder, L2Normalize, Pooling

    layers = list(all_layers(model))
    poolings = [layer.mode for layer in layers if isinstance(layer, Pooling)]
    lengths = [layer.sequence_length for layer in layers if isinstance(layer, Encoder)]
    return {
        "embedding_size": int(model.outputs[0].shape[-1]),
        "pooling": poolings[-1] if poolings else None,
        "normalized": any(isinstance(layer, L2Normalize) for layer in layers),
        "sequence_length": int(lengths[0]) if lengths else None,
    }


def write_metadata(version_dir, metadata):
    """Writes `metadata` plus the writing versions to `assets.extra/keras_siamese.json`.

    Returns the file's path; the file is written atomically.

    Example:
    >>> write_metadata("serving/wordnet/1", describe_model(model))  # doctest: +SKIP
    'serving/wordnet/1/assets.extra/keras_siamese.json'
    """
    import tensorflow as tf

    import keras_siamese

    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict, got {type(metadata).__name__}.")
    if not os.path.isfile(os.path.join(os.fspath(version_dir), "saved_model.pb")):
        raise ValueError(f"{version_dir} is not a SavedModel directory (no saved_model.pb).")
    content = {
        **metadata,
        "keras_siamese_version": keras_siamese.__version__,
        "tensorflow_version": tf.__version__,
    }
    path = os.path.join(os.fspath(version_dir), METADATA_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_file_path(path) as tmp, open(tmp, "w", encoding="utf-8") as file:
        json.dump(content, file, indent=2, sort_keys=True)
        file.write("\n")
    return path


def read_metadata(version_dir):
    """The dict `write_metadata` stored in `version_dir`.

    Example:
    >>> read_metadata("serving/wordnet/1")["embedding_size"]  # doctest: +SKIP
    64
    """
    path = os.path.join(os.fspath(version_dir), METADATA_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"{version_dir} has no {METADATA_FILE}; it was not exported with metadata.")
    with reading(path, f"metadata file ({METADATA_FILE})"), open(path, encoding="utf-8") as file:
        return json.load(file)


def all_layers(layer):
    """Every layer inside `layer` (a model or a layer), depth first.

    Example:
    >>> import keras
    >>> inputs = keras.Input(shape=(3,))
    >>> [type(each).__name__ for each in all_layers(keras.Model(inputs, keras.layers.Dense(2)(inputs)))]
    ['InputLayer', 'Dense']
    """
    for child in getattr(layer, "layers", []):
        yield child
        yield from all_layers(child)
