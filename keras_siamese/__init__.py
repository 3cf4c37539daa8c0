"""keras_siamese: sentence embeddings trained with online triplet mining, served by TF Serving.

Subpackages load on first use (`keras_siamese.layers`, `.losses`, `.models`,
`.data`, `.export`, `.evaluation`, `.search`), so `import keras_siamese` is
cheap and the command line can configure TensorFlow's logging first.

Example:
>>> import numpy as np, keras_siamese
>>> keras_siamese.layers.L2Normalize()(np.array([[3.0, 4.0]])).numpy().round(3).tolist()
[[0.6, 0.8]]
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = ("data", "evaluation", "export", "layers", "losses", "models", "search")


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"keras_siamese.{name}")
    raise AttributeError(f"module 'keras_siamese' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBPACKAGES))
