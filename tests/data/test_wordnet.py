import collections
import gzip
import os

import numpy as np
import pytest

from keras_siamese.data import wordnet
from keras_siamese.data.wordnet import (
    WORDNET_LEXNAMES,
    gloss_definition,
    load_wordnet_glosses,
    write_wordnet_sample,
)
from tests.harness import check_bad_input

DEBIAN_DIR = "/usr/share/wordnet"
LEXNAMES_MAN_PAGE = "/usr/share/man/man5/lexnames.5WN.gz"
needs_debian = pytest.mark.skipif(
    not os.path.isfile(os.path.join(DEBIAN_DIR, "data.noun")),
    reason="WordNet database not installed (apt-get install wordnet-base)",
)


def _debian_lines():
    """(file number, gloss) of every synset line, read with plain string operations."""
    for pos in ("noun", "verb", "adj", "adv"):
        with open(os.path.join(DEBIAN_DIR, f"data.{pos}")) as file:
            for line in file:
                if line[0].isdigit():
                    yield int(line.split(" ")[1]), line[line.index(" | ") + 3:].strip()


@pytest.mark.skipif(not os.path.isfile(LEXNAMES_MAN_PAGE), reason="lexnames(5WN) not installed")
def test_lexnames_match_the_man_page():
    table = gzip.open(LEXNAMES_MAN_PAGE, "rt").read().split("_\n", 1)[1].split(".TE")[0]
    rows = [line.split("\t") for line in table.strip().splitlines()]
    assert WORDNET_LEXNAMES == tuple(row[1].strip() for row in rows)
    assert [int(row[0]) for row in rows] == list(range(45))


@needs_debian
def test_system_corpus_matches_an_independent_count():
    texts, labels, names = load_wordnet_glosses("system")
    lines = list(_debian_lines())
    assert len(texts) == len(lines) == 117659
    assert names == list(WORDNET_LEXNAMES)
    expected = collections.Counter(WORDNET_LEXNAMES[number] for number, _ in lines)
    assert collections.Counter(names[label] for label in labels) == expected
    assert min(expected.values()) == 42 and max(expected.values()) == 14435
    dog = next(i for i, text in enumerate(texts) if text.startswith("a member of the genus Canis"))
    assert names[labels[dog]] == "noun.animal"
    assert texts[dog].endswith('"the dog barked all night"')
    assert labels.dtype == np.int32


@needs_debian
def test_known_synsets():
    synsets = {synset_id: (lexname, gloss) for synset_id, lexname, gloss in wordnet.read_wordnet_synsets()}
    assert synsets["02084071-n"][0] == "noun.animal"
    assert synsets["02084071-n"][1].startswith("a member of the genus Canis (probably descended")
    assert synsets["00001740-n"][0] == "noun.Tops"
    run = next(lexname for synset_id, (lexname, gloss) in synsets.items()
               if synset_id.endswith("-v") and gloss.startswith("move fast by using one's feet"))
    assert run == "verb.motion"


def test_definition_drops_quoted_examples():
    gloss = 'a member of the genus Canis; occurs in many breeds; "the dog barked all night"'
    assert gloss_definition(gloss) == "a member of the genus Canis; occurs in many breeds"
    assert gloss_definition("no examples here") == "no examples here"


@needs_debian
def test_definition_text_option():
    definitions, labels, _ = load_wordnet_glosses("system", text="definition")
    glosses, same_labels, _ = load_wordnet_glosses("system", text="gloss")
    np.testing.assert_array_equal(labels, same_labels)
    assert all(gloss.startswith(d) for d, gloss in zip(definitions[::500], glosses[::500]))
    assert not any('"' in d.split(";")[-1][:2] for d in definitions)
    assert np.mean([len(d.split()) for d in definitions]) < np.mean([len(g.split()) for g in glosses])


def test_bundled_sample_loads_without_the_debian_files(monkeypatch, tmp_path):
    monkeypatch.setattr(wordnet, "SYSTEM_WORDNET_DIR", str(tmp_path / "absent"))
    texts, labels, names = load_wordnet_glosses("auto")
    assert names == list(WORDNET_LEXNAMES)
    counts = collections.Counter(labels.tolist())
    assert len(counts) == 45 and max(counts.values()) == 300
    assert counts[names.index("noun.motive")] == 42  # the smallest class, kept whole
    with pytest.raises(FileNotFoundError, match="apt-get install wordnet-base"):
        load_wordnet_glosses("system")


@needs_debian
def test_bundled_sample_is_real_wordnet_and_regenerates_byte_for_byte(tmp_path):
    real = collections.Counter((WORDNET_LEXNAMES[n], gloss) for n, gloss in _debian_lines())
    texts, labels, names = load_wordnet_glosses("bundled")
    assert all(real[(names[label], text)] for text, label in zip(texts, labels))
    write_wordnet_sample(tmp_path / "sample.tsv.gz")
    assert (tmp_path / "sample.tsv.gz").read_bytes() == wordnet.BUNDLED_SAMPLE.read_bytes()
    assert load_wordnet_glosses(str(tmp_path / "sample.tsv.gz"))[0] == texts


def test_min_class_size_drops_and_renumbers(tmp_path):
    path = tmp_path / "tiny.tsv"
    path.write_text(
        "synset\tlexname\tgloss\n"
        "1-n\tnoun.food\tbread\n2-n\tnoun.food\tcheese\n3-n\tnoun.plant\tan oak\n"
        "4-v\tverb.motion\trun\n5-v\tverb.motion\twalk\n"
    )
    texts, labels, names = load_wordnet_glosses(str(path), min_class_size=2)
    assert names == ["noun.food", "verb.motion"]
    assert texts == ["bread", "cheese", "run", "walk"] and labels.tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="min_class_size"):
        load_wordnet_glosses(str(path), min_class_size=3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"source": "/no/such/place"}, "does not exist"),
        ({"source": "bundled", "text": "examples"}, "'gloss' or 'definition'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_wordnet_glosses(**kwargs)


BAD_INPUT = {
    "wordnet text mode": (lambda: load_wordnet_glosses("bundled", text="examples"), ValueError,
                          "text must be 'gloss' or 'definition', got 'examples'"),
    "wordnet min_class_size 0": (lambda: load_wordnet_glosses("bundled", min_class_size=0), ValueError,
                                 "min_class_size must be a positive integer, got 0"),
    "wordnet source missing": (lambda: load_wordnet_glosses("/no/such/wordnet"), ValueError,
                               "got '/no/such/wordnet', which does not exist"),
    "wordnet source None": (lambda: load_wordnet_glosses(None), ValueError,
                            "a WordNet directory or a sample file; got None"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])


def test_malformed_sample(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("synset\tlexname\tgloss\n1-n\tnoun.nothing\tbread\n")
    with pytest.raises(ValueError, match="malformed row"):
        load_wordnet_glosses(str(path))
    path.write_text("a,b\n")
    with pytest.raises(ValueError, match="not a WordNet sample"):
        load_wordnet_glosses(str(path))
