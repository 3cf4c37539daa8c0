"""Every Example in the package's docstrings runs and prints what it shows."""

import doctest
import importlib
import pkgutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_siamese

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(keras_siamese.__path__, "keras_siamese.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module,
        extraglobs={"tf": tf, "np": np, "keras": keras},
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.failed == 0
