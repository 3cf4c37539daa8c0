"""Shared fixtures: a small real corpus and a tiny ALBERT built from it."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The configuration the keras-siamese program runs in (cli.program), on every CPU: TensorFlow itself turns
# oneDNN's rewrites on only on CPUs with AVX-512 VNNI/BF16 or AMX.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import shutil  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """Skips `needs_cxx` tests, with the reason, on a machine without a C++ compiler."""
    if os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++"):
        return
    skip = pytest.mark.skip(reason="needs a C++ compiler for the serving check (apt-get install g++, or set $CXX)")
    for item in items:
        if "needs_cxx" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def glosses():
    """(texts, labels): 1,200 bundled WordNet glosses from 12 lexicographer files."""
    from keras_siamese.data import load_wordnet_glosses

    texts, labels, _ = load_wordnet_glosses(source="bundled")
    texts, labels = np.asarray(texts, dtype=object), np.asarray(labels)
    keep = np.concatenate([np.flatnonzero(labels == label)[:100] for label in np.unique(labels)[:12]])
    return texts[keep].tolist(), labels[keep]


@pytest.fixture(scope="session")
def tiny_encoder_factory(glosses):
    """Builds a 2-layer, hidden-32 ALBERT with a vocabulary trained on the glosses."""
    from keras_siamese.layers import AlbertEncoder, train_sentencepiece

    proto = train_sentencepiece(glosses[0], vocabulary_size=600)

    def make(**kwargs):
        from keras_hub.models import AlbertBackbone, AlbertTokenizer

        tokenizer = AlbertTokenizer(proto=proto)
        backbone = AlbertBackbone(
            vocabulary_size=tokenizer.vocabulary_size(),
            num_layers=2,
            num_heads=2,
            embedding_dim=16,
            hidden_dim=32,
            intermediate_dim=64,
            max_sequence_length=64,
            dropout=kwargs.pop("dropout", 0.0),
        )
        return AlbertEncoder(backbone, tokenizer, sequence_length=kwargs.pop("sequence_length", 24), **kwargs)

    return make
