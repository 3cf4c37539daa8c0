import json

import pytest

from keras_siamese.data.loaders import load_huffpost
from tests.harness import check_bad_input, scratch_dir


def _write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    return path


def test_load_huffpost_joins_filters_and_labels(tmp_path):
    rows = [
        {"category": "SPORTS", "headline": "Team wins the cup", "short_description": "A late goal seals a famous night", "link": "x"},
        {"category": "ARTS", "headline": "Short one", "short_description": "too few words", "link": "y"},
        {"category": "POLITICS", "headline": "Vote today", "short_description": "polls open at seven across the whole country", "link": "z"},
    ]
    texts, labels, names = load_huffpost(_write_jsonl(tmp_path / "news.json", rows))
    assert texts == [
        "Team wins the cup. A late goal seals a famous night",
        "Vote today. polls open at seven across the whole country",
    ]
    assert names == ["POLITICS", "SPORTS"] and labels.tolist() == [1, 0]
    assert len(load_huffpost(tmp_path / "news.json", min_words=3)[0]) == 3
    with pytest.raises(ValueError, match="no field 'short_description'"):
        load_huffpost(_write_jsonl(tmp_path / "bad.json", [{"category": "A", "headline": "h"}]))


def _corpus_file(name, text):
    path = scratch_dir() / name
    path.write_text(text)
    return path


BAD_INPUT = {
    "huffpost min_words string": (lambda: load_huffpost(_corpus_file("news.json", ""), min_words="10"),
                                  ValueError, "min_words must be a non-negative integer, got '10'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
