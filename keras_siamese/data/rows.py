"""Rows of texts in the shapes of sentence-transformers' datasets, read from JSON lines, CSV/TSV, Parquet
or a Hugging Face `datasets.Dataset`.

The text columns come in order; a column named `label` or `score` holds each
row's label. The number of text columns and the label decide the shape:

| shape                | text columns                          | label         | losses that take it            |
|----------------------|---------------------------------------|---------------|--------------------------------|
| `LABELLED_TEXTS`     | 1 (text)                              | a class       | triplet losses, MNRL, contrastive |
| `PAIRS`              | 2 (anchor, positive)                  | none          | MNRL                           |
| `ROWS_WITH_NEGATIVES`| 3 or more (anchor, positive, negatives)| none         | MNRL                           |
| `SCORED_PAIRS`       | 2 (sentence1, sentence2)              | a number      | CoSENT, cosine, contrastive (0/1) |

Example:
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "faq.jsonl"
>>> _ = path.write_text('{"anchor": "how do I pay", "positive": "Payment methods"}\\n')
>>> rows = load_rows(path)
>>> rows.shape, rows.columns, len(rows)
('pairs', ('anchor', 'positive'), 1)
"""

import csv
import dataclasses
import json
import math
import os

import numpy as np

from keras_siamese.checks import check_integer
from keras_siamese.data.labels import check_corpus

LABELLED_TEXTS = "labelled texts"
PAIRS = "pairs"
ROWS_WITH_NEGATIVES = "rows with negatives"
SCORED_PAIRS = "scored pairs"
LABEL_COLUMNS = ("label", "score")  # sentence-transformers' names for the label column
FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}


@dataclasses.dataclass
class TextRows:
    """Texts in named columns, one row per example, with an optional label per row.

    `texts[c][i]` is row i's text in column `columns[c]`; `labels[i]` its label
    (a class name or number, or a score), None without a label column;
    `lines[i]` where the row came from (a file's line, or a row number), so a
    problem found later names it.

    Example:
    >>> rows = TextRows(("anchor", "positive"), (["a dog"], ["a puppy"]), source="faq.jsonl")
    >>> rows.shape, rows.row(0)
    ('pairs', ('a dog', 'a puppy'))
    """

    columns: tuple
    texts: tuple
    labels: list = None
    label_column: str = None
    source: str = "rows"
    lines: np.ndarray = None
    unit: str = "row"

    def __post_init__(self):
        self.columns, self.texts = tuple(self.columns), tuple(list(column) for column in self.texts)
        if self.lines is None:
            self.lines = np.arange(1, len(self) + 1)

    def __len__(self):
        return len(self.texts[0]) if self.texts else 0

    @classmethod
    def labelled(cls, texts, labels, source="the given texts", label_column="label"):
        """`LABELLED_TEXTS` rows of `texts` and their `labels` (integers or strings, checked as
        `keras_siamese.data.encode_labels` checks them).

        Example:
        >>> TextRows.labelled(["a dog", "an oak"], ["animal", "plant"]).describe()
        '2 labelled texts (text + label) from the given texts, 2 labels'
        """
        texts, ids, classes = check_corpus(texts, labels)
        values = [classes[i] for i in ids] if classes and isinstance(classes[0], str) else ids.tolist()
        return cls(("text",), (texts,), values, label_column, source)

    @property
    def shape(self):
        """`LABELLED_TEXTS`, `PAIRS`, `ROWS_WITH_NEGATIVES` or `SCORED_PAIRS`; a `ValueError` for none of them."""
        count, labelled = len(self.columns), self.labels is not None
        if count == 1 and labelled:
            return LABELLED_TEXTS
        if count == 2:
            return SCORED_PAIRS if labelled else PAIRS
        if count >= 3 and not labelled:
            return ROWS_WITH_NEGATIVES
        raise ValueError(
            f"{self.source}: {count} text column(s) {list(self.columns)}"
            f"{f' and the label column {self.label_column!r}' if labelled else ' and no label column'} "
            "are not a shape this package trains on: (text, label), (anchor, positive), "
            "(anchor, positive, negative_1, ...) or (sentence1, sentence2, score)."
        )

    def row(self, index):
        """Row `index`'s texts, in column order."""
        return tuple(column[index] for column in self.texts)

    def where(self, index):
        """Where row `index` came from, for messages: 'news.csv, line 12'."""
        return f"{self.source}, {'line' if self.unit == 'line' else 'row'} {int(self.lines[index])}"

    def take(self, positions):
        """The rows at `positions`, in that order."""
        positions = np.asarray(positions, np.int64)
        return dataclasses.replace(
            self,
            texts=tuple([column[i] for i in positions] for column in self.texts),
            labels=None if self.labels is None else [self.labels[i] for i in positions],
            lines=self.lines[positions],
        )

    def labelled_texts(self):
        """`(texts, labels, class_names)` of `LABELLED_TEXTS` rows: labels as int32 indices into the sorted
        class names (numbers sorted by value)."""
        if self.shape != LABELLED_TEXTS:
            raise ValueError(f"{self.source} holds {self.shape}, not labelled texts (one text column and a label).")
        for index, label in enumerate(self.labels):
            if isinstance(label, bool) or not isinstance(label, (str, int)):
                raise ValueError(f"{self.where(index)}: the label {label!r} is not a class name or an integer.")
        raw = self.labels
        values = sorted(set(raw)) if all(isinstance(label, int) for label in raw) else sorted({str(v) for v in raw})
        index = {value: number for number, value in enumerate(values)}
        ids = np.array([index[label if isinstance(values[0], int) else str(label)] for label in raw], np.int32)
        return self.texts[0], ids, [str(value) for value in values]

    def scores(self, low=-math.inf, high=math.inf, what="scores"):
        """The labels as float32 scores, each a finite number in [`low`, `high`]; otherwise a `ValueError`
        naming the row (`what` says what needs that range, e.g. '--loss cosine')."""
        if self.labels is None:
            raise ValueError(f"{self.source} has no label or score column.")
        values = np.empty(len(self), np.float32)
        for index, label in enumerate(self.labels):
            value = _number(label)
            if value is None or not math.isfinite(value) or not low <= value <= high:
                bounds = f" in [{low:g}, {high:g}]" if math.isfinite(low) or math.isfinite(high) else ""
                raise ValueError(f"{self.where(index)}: {self.label_column} {label!r} is not a finite number{bounds}, "
                                 f"which {what} takes.")
            values[index] = value
        return values

    def describe(self):
        """'1,200 pairs (anchor, positive) from faq.jsonl'."""
        label = f" + {self.label_column}" if self.labels is not None else ""
        classes = f", {len(set(map(str, self.labels)))} labels" if self.shape == LABELLED_TEXTS else ""
        return f"{len(self):,} {self.shape} ({', '.join(self.columns)}{label}) from {self.source}{classes}"


def load_rows(source, columns=None, label_column=None):
    """Reads every row of `source` into a `TextRows` (see `iter_rows` for the arguments).

    Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "sts.csv"
    >>> _ = path.write_text("sentence1,sentence2,score\\na dog,a puppy,0.9\\n")
    >>> load_rows(path).scores().tolist()
    [0.8999999761581421]
    """
    chunks = list(iter_rows(source, columns, label_column))
    first = chunks[0]
    return dataclasses.replace(
        first,
        texts=tuple(sum((chunk.texts[c] for chunk in chunks), []) for c in range(len(first.columns))),
        labels=None if first.labels is None else sum((chunk.labels for chunk in chunks), []),
        lines=np.concatenate([chunk.lines for chunk in chunks]),
    )


def iter_rows(source, columns=None, label_column=None, chunk_rows=10_000):
    """Reads `source` in `TextRows` chunks of at most `chunk_rows` rows: memory bounded by a chunk.

    Args:
        source: a `.jsonl`/`.json` (JSON lines), `.csv`, `.tsv` or `.parquet` file, or a Hugging Face
            `datasets.Dataset`.
        columns: the text columns, in order; default: every column but the label column, in the
            source's order (a JSON file's first object, a CSV header, a Parquet schema).
        label_column: default: `label` or `score`, whichever the source has (none: no label).
        chunk_rows: rows per chunk.

    Every row must have every named column, each text a non-empty string; a
    problem is a `ValueError` naming the file and line (or row); a file that is
    not what its extension says, too. Blank JSON lines are skipped.

    Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.tsv"
    >>> _ = path.write_text("q\\tdoc\\nhow\\tthis\\nwhy\\tthat\\n")
    >>> [len(chunk) for chunk in iter_rows(path, chunk_rows=1)]
    [1, 1]
    """
    chunk_rows = check_integer(chunk_rows, "chunk_rows")
    name, records, unit = read_records(source)
    chunk, layout = [], None
    for location, record in records:
        if layout is None:
            layout = _layout(name, list(record), columns, label_column)
        chunk.append((location, _row(name, unit, location, record, *layout)))
        if len(chunk) == chunk_rows:
            yield _chunk(name, unit, layout, chunk)
            chunk = []
    if layout is None:
        raise ValueError(f"{name}: no rows found.")
    if chunk:
        yield _chunk(name, unit, layout, chunk)


def count_rows(source):
    """The number of rows `iter_rows(source)` reads (a pass over the file, nothing kept)."""
    return sum(1 for _ in read_records(source)[1])


def read_records(source):
    """`(name, records, unit)`: the source's name for messages, an iterator of `(line or row number,
    dict)` over its records, and whether those numbers are `"line"`s or `"row"`s. The format comes
    from the file's extension; a file that is not what it says is a `ValueError` naming it.

    Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "r.jsonl"
    >>> _ = path.write_text('\\n{"a": 1}\\n')
    >>> name, records, unit = read_records(path)
    >>> list(records), unit
    ([(2, {'a': 1})], 'line')
    """
    if hasattr(source, "column_names") and hasattr(source, "features"):  # a datasets.Dataset
        return "the dataset", enumerate(iter(source), start=1), "row"
    if not isinstance(source, (str, bytes, os.PathLike)):
        raise ValueError(f"source must be a file path or a datasets.Dataset, got {type(source).__name__}.")
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such data file: {path}")
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        raise ValueError(f"{path}: expected a {', '.join(FORMATS)} file.")
    reader = {"json": _json_records, "csv": _csv_records, "tsv": _csv_records, "parquet": _parquet_records}
    return path, reader[FORMATS[extension]](path, FORMATS[extension]), "row" if extension == ".parquet" else "line"


def _json_records(path, _):
    with open(path, encoding="utf-8") as file:
        for number, line in _decoded(path, file):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not valid JSON ({error.msg}); is it a JSON lines file?") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}.")
            yield number, record


def _csv_records(path, kind):
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.reader((line for _, line in _decoded(path, file)), delimiter="\t" if kind == "tsv" else ",")
        header = next(reader, None)
        if not header:
            return
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                raise ValueError(
                    f"{path}, line {reader.line_num}: {len(fields)} fields where the header names {len(header)} "
                    f"({', '.join(header)})."
                )
            yield reader.line_num, dict(zip(header, fields))


def _parquet_records(path, _):
    import pyarrow
    import pyarrow.parquet

    try:
        file = pyarrow.parquet.ParquetFile(path)
    except pyarrow.ArrowException as error:
        raise ValueError(f"{path}: not a Parquet file ({error}).") from None
    number = 0
    for batch in file.iter_batches(batch_size=4096):
        for record in batch.to_pylist():
            number += 1
            yield number, record


def _decoded(path, file):
    """`(line number, line)` of a text file; a `ValueError` for bytes that are not UTF-8 text."""
    number = 0
    try:
        for number, line in enumerate(file, start=1):
            yield number, line
    except UnicodeDecodeError:
        raise ValueError(f"{path}, line {number + 1}: not UTF-8 text; is it a {os.path.splitext(path)[1]} file?") from None


def _layout(name, fields, columns, label_column):
    """`(text columns, label column or None)` checked against the first record's fields."""
    if label_column is None:
        present = [field for field in LABEL_COLUMNS if field in fields]
        if len(present) > 1:
            raise ValueError(f"{name}: both a 'label' and a 'score' column; name the label column.")
        label_column = present[0] if present else None
    elif label_column not in fields:
        raise ValueError(f"{name}: no label column {label_column!r}; columns are {fields}.")
    if columns is None or len(columns) == 0:
        columns = tuple(field for field in fields if field != label_column)
    else:
        columns = tuple(columns)
        missing = [column for column in columns if column not in fields]
        if missing:
            raise ValueError(f"{name}: no column {missing[0]!r}; columns are {fields}.")
        if label_column in columns:
            raise ValueError(f"{name}: {label_column!r} is the label column; it cannot be a text column too.")
    if not columns:
        raise ValueError(f"{name}: no text column; columns are {fields}.")
    return columns, label_column


def _row(name, unit, location, record, columns, label_column):
    """`(texts, label)` of one record, every text a non-empty string."""
    texts = []
    for column in columns + ((label_column,) if label_column else ()):
        if column not in record:
            raise ValueError(f"{name}, {unit} {location}: no column {column!r}; the row has {sorted(record)}.")
    for column in columns:
        text = record[column]
        if not isinstance(text, str):
            raise ValueError(f"{name}, {unit} {location}: {column} is a {type(text).__name__}, not a text.")
        if not text.strip():
            raise ValueError(f"{name}, {unit} {location}: {column} is empty.")
        texts.append(text)
    return texts, record[label_column] if label_column else None


def _chunk(name, unit, layout, chunk):
    columns, label_column = layout
    return TextRows(
        columns,
        tuple([texts[c] for _, (texts, _) in chunk] for c in range(len(columns))),
        labels=[label for _, (_, label) in chunk] if label_column else None,
        label_column=label_column,
        source=name,
        lines=np.array([location for location, _ in chunk], np.int64),
        unit=unit,
    )


def _number(value):
    """`value` as a float if it is a number or a string of one, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, np.number)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
