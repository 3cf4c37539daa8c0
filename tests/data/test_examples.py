"""The Example sections of the data modules' docstrings run and print what they show."""

import doctest
import importlib

import pytest

MODULES = ["balanced", "epochs", "labels", "loaders", "pairs", "sampling", "splits", "triplets", "wordnet"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"keras_siamese.data.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
