import json

import numpy as np
import pytest

from keras_siamese.data.loaders import load_csv, load_huffpost, load_jsonl
from tests.harness import check_bad_input, scratch_dir


def _write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    return path


def test_load_jsonl_maps_labels_to_sorted_names(tmp_path):
    path = _write_jsonl(tmp_path / "c.jsonl", [
        {"text": "a dog", "label": "animal"}, {"text": "an oak", "label": "plant"},
        {"text": "a cat", "label": "animal"},
    ])
    texts, labels, names = load_jsonl(path, "text", "label")
    assert texts == ["a dog", "an oak", "a cat"]
    assert names == ["animal", "plant"]
    assert labels.dtype == np.int32 and labels.tolist() == [0, 1, 0]


def test_load_jsonl_integer_labels_sort_by_value(tmp_path):
    path = _write_jsonl(tmp_path / "c.jsonl", [{"t": "x", "y": 10}, {"t": "z", "y": 9}])
    texts, labels, names = load_jsonl(path, "t", "y")
    assert names == ["9", "10"] and labels.tolist() == [1, 0]


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"text": "a"}], "line 1: no field 'label'"),
        ([{"text": "a", "label": "x"}, {"label": "x"}], "line 2: no field 'text'"),
        ([{"text": 3, "label": "x"}], "field 'text' is a int"),
        ([{"text": "a", "label": True}], "field 'label' is a bool"),
        ([[1, 2]], "expected a JSON object"),
    ],
)
def test_load_jsonl_errors(tmp_path, rows, message):
    with pytest.raises(ValueError, match=message):
        load_jsonl(_write_jsonl(tmp_path / "c.jsonl", rows), "text", "label")


def test_load_jsonl_bad_json_and_missing_file(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": "x"}\n{oops\n')
    with pytest.raises(ValueError, match="line 2: not valid JSON"):
        load_jsonl(tmp_path / "bad.jsonl", "text", "label")
    with pytest.raises(FileNotFoundError, match="nothere"):
        load_jsonl(tmp_path / "nothere.jsonl", "text", "label")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no labelled texts"):
        load_jsonl(tmp_path / "empty.jsonl", "text", "label")


def test_load_csv(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text('id\tsentence\ttopic\n1\t"a dog, barking"\tpets\n2\tstocks fall\tmoney\n')
    texts, labels, names = load_csv(path, "sentence", "topic", delimiter="\t")
    assert texts == ["a dog, barking", "stocks fall"]
    assert names == ["money", "pets"] and labels.tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"no column \['label'\].*columns are \['id', 'sentence', 'topic'\]"):
        load_csv(path, "sentence", "label", delimiter="\t")
    path.write_text("text,label\na dog,x\nshort row\n")
    with pytest.raises(ValueError, match="line 3: the row has too few fields"):
        load_csv(path, "text", "label")


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
    "jsonl file missing": (lambda: load_jsonl(scratch_dir() / "absent.jsonl", "text", "label"),
                           FileNotFoundError, "no such corpus file: "),
    "jsonl path None": (lambda: load_jsonl(None, "text", "label"), ValueError,
                        "path must be a file path, got NoneType"),
    "jsonl file empty": (lambda: load_jsonl(_corpus_file("empty.jsonl", ""), "text", "label"), ValueError,
                         "empty.jsonl: no labelled texts found"),
    "jsonl field missing": (lambda: load_jsonl(_corpus_file("c.jsonl", '{"text": "a dog", "label": "pet"}\n'),
                                               "sentence", "label"),
                            ValueError, "line 1: no field 'sentence'; fields are ['label', 'text']"),
    "csv column missing": (lambda: load_csv(_corpus_file("c.csv", "sentence,label\na,b\n"), "text", "label"),
                           ValueError, "no column ['text'] in the header; columns are ['sentence', 'label']"),
    "csv file empty": (lambda: load_csv(_corpus_file("empty.csv", ""), "text", "label"), ValueError,
                       "no column ['text', 'label'] in the header; columns are []"),
    "csv file missing": (lambda: load_csv(scratch_dir() / "absent.csv", "text", "label"), FileNotFoundError,
                         "no such corpus file: "),
    "huffpost min_words string": (lambda: load_huffpost(_corpus_file("news.json", ""), min_words="10"),
                                  ValueError, "min_words must be a non-negative integer, got '10'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
