"""`load_model`: Keras' loader with keras_siamese's layers registered and clear errors for bad files."""

import keras

from keras_siamese.artifacts import check_zip_archive, reading

KERAS_FILE = ".keras model file"


def load_model(path, **kwargs):
    """Loads a `.keras` file like `keras.saving.load_model`, saying plainly when the file is bad.

    Every layer, model and optimizer of keras_siamese a saved file may name is
    registered. A missing file is a `FileNotFoundError`; an empty, truncated
    or corrupt one an `UnreadableFileError` naming it (Keras itself reports
    "File not found" for a file that is there). `kwargs` go to Keras
    (`custom_objects`, `compile`, `safe_mode`).

    Example:
    >>> model = load_model("checkpoints/epoch03.keras")  # doctest: +SKIP
    """
    import keras_siamese.layers  # noqa: F401  registers the layers a file may name
    import keras_siamese.models  # noqa: F401  and the models (and LazyAdam)

    with reading(path, KERAS_FILE):
        check_zip_archive(path)
        return keras.saving.load_model(path, **kwargs)
