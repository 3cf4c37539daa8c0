"""Reading pairs, rows with negatives, scored pairs and labelled texts from every format the same way."""

import json

import numpy as np
import pytest

from keras_siamese.data.rows import (
    LABELLED_TEXTS,
    PAIRS,
    ROWS_WITH_NEGATIVES,
    SCORED_PAIRS,
    TextRows,
    count_rows,
    iter_rows,
    load_rows,
)
from tests.harness import check_bad_input, scratch_dir

# Texts with a comma, a quote, a tab-free accent and an emoji: what CSV quoting must survive.
RECORDS = [
    {"question": "How do I pay, by card?", "answer": "Payment \"methods\"", "other": "Opening hours", "score": 0.8},
    {"question": "Où est la gare ?", "answer": "Directions to the station", "other": "Ticket prices", "score": 0.5},
    {"question": "refund 😀", "answer": "Refund policy", "other": "Payment \"methods\"", "score": -0.25},
]


def _write(path, records):
    """`records` (dicts of one layout) written as the format of `path`'s extension."""
    names = list(records[0])
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n\n" for record in records), encoding="utf-8")
    elif path.suffix in (".csv", ".tsv"):
        import csv

        with open(path, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file, delimiter="\t" if path.suffix == ".tsv" else ",")
            writer.writerow(names)
            writer.writerows([[record[name] for name in names] for record in records])
    else:
        import pyarrow
        import pyarrow.parquet

        pyarrow.parquet.write_table(pyarrow.table({name: [r[name] for r in records] for name in names}), path)
    return path


def _records(*names):
    return [{name: record[name] for name in names} for record in RECORDS]


@pytest.mark.parametrize("extension", [".jsonl", ".csv", ".tsv", ".parquet", "dataset"])
@pytest.mark.parametrize(
    "names, shape",
    [
        (("question", "answer"), PAIRS),
        (("question", "answer", "other"), ROWS_WITH_NEGATIVES),
        (("question", "answer", "score"), SCORED_PAIRS),
    ],
)
def test_every_format_reads_the_same_rows(tmp_path, extension, names, shape):
    records = _records(*names)
    if extension == "dataset":
        datasets = pytest.importorskip("datasets")
        source = datasets.Dataset.from_list(records)
    else:
        source = _write(tmp_path / f"rows{extension}", records)
    rows = load_rows(source)
    text_columns = tuple(name for name in names if name != "score")
    assert rows.shape == shape and rows.columns == text_columns and len(rows) == 3
    for index, record in enumerate(records):
        assert rows.row(index) == tuple(record[name] for name in text_columns)
    if shape == SCORED_PAIRS:
        np.testing.assert_array_equal(rows.scores(), np.float32([0.8, 0.5, -0.25]))
    else:
        assert rows.labels is None


def test_columns_choose_and_order_the_text_columns_and_name_the_label(tmp_path):
    path = _write(tmp_path / "faq.csv", _records("other", "answer", "question", "score"))
    rows = load_rows(path, columns=("question", "answer"))
    assert rows.columns == ("question", "answer") and rows.shape == SCORED_PAIRS
    assert rows.row(1) == ("Où est la gare ?", "Directions to the station")
    pairs = load_rows(path, columns=["question", "other"], label_column="answer")
    assert pairs.shape == SCORED_PAIRS and pairs.labels[0] == 'Payment "methods"'


def test_labelled_texts_map_labels_to_sorted_names(tmp_path):
    path = _write(tmp_path / "c.jsonl", [{"text": "a dog", "label": "animal"}, {"text": "an oak", "label": "plant"},
                                         {"text": "a cat", "label": "animal"}])
    rows = load_rows(path)
    assert rows.shape == LABELLED_TEXTS
    texts, labels, names = rows.labelled_texts()
    assert texts == ["a dog", "an oak", "a cat"] and names == ["animal", "plant"]
    assert labels.dtype == np.int32 and labels.tolist() == [0, 1, 0]
    numbers = load_rows(_write(tmp_path / "n.jsonl", [{"t": "x", "y": 10}, {"t": "z", "y": 9}]), label_column="y")
    assert numbers.labelled_texts()[1:] == (pytest.approx([1, 0]), ["9", "10"])


def test_chunks_bound_what_is_held_and_add_up_to_the_file(tmp_path):
    records = [{"anchor": f"query {i}", "positive": f"document {i}"} for i in range(25)]
    path = _write(tmp_path / "big.jsonl", records)  # a blank line after each row: line numbers 1, 3, 5, ...
    chunks = list(iter_rows(path, chunk_rows=10))
    assert [len(chunk) for chunk in chunks] == [10, 10, 5] and count_rows(path) == 25
    whole = load_rows(path)
    assert [row for chunk in chunks for row in zip(*chunk.texts)] == list(zip(*whole.texts))
    assert whole.lines.tolist() == list(range(1, 50, 2)) and whole.where(24) == f"{path}, line 49"


def test_take_keeps_rows_labels_and_where_they_came_from():
    rows = TextRows(("a", "b"), (["x", "y", "z"], ["1", "2", "3"]), labels=[0.1, 0.2, 0.3], label_column="score",
                    source="f.csv", lines=np.array([2, 3, 4]), unit="line")
    taken = rows.take([2, 0])
    assert taken.texts == (["z", "x"], ["3", "1"]) and taken.labels == [0.3, 0.1] and taken.where(0) == "f.csv, line 4"


def _file(name, content):
    path = scratch_dir() / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _parquet_bytes():
    path = _write(scratch_dir() / "real.parquet", _records("question", "answer"))
    return path.read_bytes()


BAD_INPUT = {
    "missing column in a later row": (
        lambda: load_rows(_file("m.jsonl", '{"anchor": "a", "positive": "b"}\n{"anchor": "c"}\n')),
        ValueError, "m.jsonl, line 2: no column 'positive'; the row has ['anchor']"),
    "empty text": (lambda: load_rows(_file("e.csv", "anchor,positive\na,b\nc,  \n")),
                   ValueError, "e.csv, line 3: positive is empty"),
    "a text that is a number": (lambda: load_rows(_file("n.jsonl", '{"anchor": "a", "positive": 7}\n')),
                                ValueError, "n.jsonl, line 1: positive is a int, not a text"),
    "row with fewer fields than the header": (lambda: load_rows(_file("f.csv", "anchor,positive,negative\na,b,c\nd,e\n")),
                                              ValueError, "f.csv, line 3: 2 fields where the header names 3"),
    "score that is not a number": (
        lambda: load_rows(_file("s.csv", "sentence1,sentence2,score\na,b,0.5\nc,d,high\n")).scores(),
        ValueError, "s.csv, line 3: score 'high' is not a finite number"),
    "score outside the range a loss takes": (
        lambda: load_rows(_file("r.csv", "sentence1,sentence2,score\na,b,0.5\nc,d,4\n")).scores(-1, 1, "--loss cosine"),
        ValueError, "r.csv, line 3: score '4' is not a finite number in [-1, 1], which --loss cosine takes"),
    "parquet that is a CSV": (lambda: load_rows(_file("p.parquet", "anchor,positive\na,b\n")),
                              ValueError, "p.parquet: not a Parquet file"),
    "csv that is a parquet file": (lambda: load_rows(_file("c.csv", _parquet_bytes())),
                                   ValueError, "c.csv, line 1: not UTF-8 text; is it a .csv file?"),
    "jsonl that is a CSV": (lambda: load_rows(_file("j.jsonl", "anchor,positive\na,b\n")),
                            ValueError, "j.jsonl, line 1: not valid JSON"),
    "json line that is not an object": (lambda: load_rows(_file("l.jsonl", "[1, 2]\n")),
                                        ValueError, "l.jsonl, line 1: expected a JSON object, got list"),
    "unknown extension": (lambda: load_rows(_file("x.xlsx", "a")), ValueError, "x.xlsx: expected a .jsonl, .json"),
    "file missing": (lambda: load_rows(scratch_dir() / "absent.jsonl"), FileNotFoundError, "no such data file: "),
    "path None": (lambda: load_rows(None), ValueError, "source must be a file path or a datasets.Dataset, got NoneType"),
    "no rows": (lambda: load_rows(_file("empty.jsonl", "\n")), ValueError, "empty.jsonl: no rows found"),
    "named column missing": (lambda: load_rows(_file("c2.csv", "q,d\na,b\n"), columns=("q", "doc")),
                             ValueError, "c2.csv: no column 'doc'; columns are ['q', 'd']"),
    "both label and score": (lambda: load_rows(_file("b.csv", "a,b,label,score\nx,y,1,2\n")),
                             ValueError, "b.csv: both a 'label' and a 'score' column; name the label column"),
    "one text column and no label": (lambda: load_rows(_file("o.csv", "text\nx\n")).shape,
                                     ValueError, "o.csv: 1 text column(s) ['text'] and no label column are not a shape"),
    "three text columns and a score": (lambda: load_rows(_file("t.csv", "a,b,c,score\nx,y,z,1\n")).shape,
                                       ValueError, "and the label column 'score' are not a shape"),
    "a boolean class label": (lambda: load_rows(_file("bool.jsonl", '{"text": "a", "label": true}\n')).labelled_texts(),
                              ValueError, "bool.jsonl, line 1: the label True is not a class name or an integer"),
    "labelled texts asked of pairs": (lambda: load_rows(_file("pp.jsonl", '{"a": "x", "b": "y"}\n')).labelled_texts(),
                                      ValueError, "pp.jsonl holds pairs, not labelled texts"),
    "chunk_rows zero": (lambda: list(iter_rows(_file("z.jsonl", '{"a": "x", "b": "y"}\n'), chunk_rows=0)),
                        ValueError, "chunk_rows must be a positive integer, got 0"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
