"""The HuffPost News Category data as the Siamese ALBERT study read it (other files: `keras_siamese.data.rows`).

`load_huffpost` returns `(texts, labels, class_names)`: `texts` a list of strings, `labels`
int32 indices into `class_names`, the sorted distinct categories.
"""

import json
import os

import numpy as np

from keras_siamese.checks import check_integer


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
