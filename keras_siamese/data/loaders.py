"""The HuffPost News Category data as the Siamese ALBERT study read it (other files: `keras_siamese.data.rows`).

`load_huffpost` returns `(texts, labels, class_names)`: `texts` a list of strings, `labels`
int32 indices into `class_names`, the sorted distinct categories.
"""

from keras_siamese.checks import check_integer
from keras_siamese.data.rows import TextRows, read_records


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
    path, records, _ = read_records(path)
    for line_number, record in records:
        headline = _field(record, "headline", path, line_number, (str,))
        description = _field(record, "short_description", path, line_number, (str,))
        text = headline + ". " + description
        if len(text.split()) >= min_words:
            texts.append(text)
            raw_labels.append(_field(record, "category", path, line_number, (str,)))
    if not texts:
        raise ValueError(f"{path}: no headline of {min_words} words or more.")
    return TextRows.labelled(texts, raw_labels, path, "category").labelled_texts()


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
