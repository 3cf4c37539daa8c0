"""Readers for labelled text corpora in JSON lines and CSV files, and the HuffPost News data.

Every loader returns `(texts, labels, class_names)`: `texts` a list of strings, `labels`
int32 indices into `class_names`, the sorted distinct label values as strings (numeric
labels sorted by value).
"""

import csv
import json
import os

import numpy as np

from keras_siamese.checks import check_integer


def load_jsonl(path, text_field, label_field):
    """Reads a JSON-lines file with one object per line; blank lines are skipped.

    Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.jsonl"
    >>> _ = path.write_text('{"t": "a dog", "y": "animal"}\\n{"t": "an oak", "y": "plant"}\\n')
    >>> load_jsonl(path, "t", "y")
    (['a dog', 'an oak'], array([0, 1], dtype=int32), ['animal', 'plant'])
    """
    texts, raw_labels = [], []
    for line_number, record in _json_records(path):
        texts.append(_field(record, text_field, path, line_number, (str,)))
        raw_labels.append(_field(record, label_field, path, line_number, (str, int)))
    return _finish(texts, raw_labels, path)


def load_csv(path, text_column, label_column, delimiter=","):
    """Reads a CSV file with a header row naming its columns.

    Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.csv"
    >>> _ = path.write_text("text,label\\na dog,animal\\nan oak,plant\\n")
    >>> load_csv(path, "text", "label")[2]
    ['animal', 'plant']
    """
    _check_file(path)
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file, delimiter=delimiter)
        columns = reader.fieldnames or []
        missing = [name for name in (text_column, label_column) if name not in columns]
        if missing:
            raise ValueError(f"{path}: no column {missing} in the header; columns are {columns}.")
        texts, raw_labels = [], []
        for row in reader:
            if row[text_column] is None or row[label_column] is None:
                raise ValueError(f"{path}, line {reader.line_num}: the row has too few fields.")
            texts.append(row[text_column])
            raw_labels.append(row[label_column])
    return _finish(texts, raw_labels, path)


def load_huffpost(path, min_words=10):
    """Reads the HuffPost News Category data set (JSON lines) the way the Siamese ALBERT
    study did: text = headline + ". " + short_description, texts of fewer than
    `min_words` whitespace-separated words dropped, `category` as the label.

    Example:
    >>> import tempfile, pathlib, json
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "news.json"
    >>> rows = [{"headline": "Team wins", "short_description": "A late goal " * 4,
    ...          "category": "SPORTS"}, {"headline": "Short", "short_description": "",
    ...          "category": "ARTS"}]
    >>> _ = path.write_text("\\n".join(json.dumps(row) for row in rows))
    >>> texts, labels, names = load_huffpost(path)
    >>> names, len(texts)
    (['SPORTS'], 1)
    """
    check_integer(min_words, "min_words", minimum=0)
    texts, raw_labels = [], []
    for line_number, record in _json_records(path):
        headline = _field(record, "headline", path, line_number, (str,))
        description = _field(record, "short_description", path, line_number, (str,))
        text = headline + ". " + description
        if len(text.split()) >= min_words:
            texts.append(text)
            raw_labels.append(_field(record, "category", path, line_number, (str,)))
    return _finish(texts, raw_labels, path)


def _check_file(path):
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise ValueError(f"path must be a file path, got {type(path).__name__}.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such corpus file: {path}")


def _json_records(path):
    """Yields `(line number, object)` for each non-blank line of a JSON-lines file."""
    _check_file(path)
    with open(path, encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {line_number}: not valid JSON ({error.msg}).") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {line_number}: expected a JSON object.")
            yield line_number, record


def _field(record, name, path, line_number, types):
    """`record[name]`, checked to exist and to be one of the tuple `types` (booleans are not ints)."""
    if name not in record:
        raise ValueError(
            f"{path}, line {line_number}: no field {name!r}; fields are {sorted(record)}."
        )
    value = record[name]
    if isinstance(value, bool) or not isinstance(value, types):
        raise ValueError(
            f"{path}, line {line_number}: field {name!r} is a {type(value).__name__}, "
            f"expected {' or '.join(t.__name__ for t in types)}."
        )
    return value


def _finish(texts, raw_labels, path):
    """Turns raw label values into int32 indices into the sorted class names."""
    if not texts:
        raise ValueError(f"{path}: no labelled texts found.")
    if all(isinstance(label, int) for label in raw_labels):
        values = sorted(set(raw_labels))
    else:
        values = sorted({str(label) for label in raw_labels})
        raw_labels = [str(label) for label in raw_labels]
    index = {value: number for number, value in enumerate(values)}
    labels = np.array([index[label] for label in raw_labels], dtype=np.int32)
    return texts, labels, [str(value) for value in values]
