"""Where a job's data and its encoder come from: the `--data` and `--encoder` settings.

`train` and `compare` share both, so a corpus or encoder that one command
reads, the other reads the same way.

Example:
>>> rows = CorpusSource("wordnet-bundled").load()  # doctest: +SKIP
>>> encoder = EncoderSource("path/to/all-MiniLM-L6-v2").build(rows.texts[0])  # doctest: +SKIP
"""

import dataclasses
import os

from keras_siamese.settings import check_integers, setting

WORDNET_SOURCES = ("wordnet-bundled", "wordnet-system")
FROM_CORPUS = "albert-from-corpus"


@dataclasses.dataclass
class CorpusSource:
    """The training data: a JSON lines, CSV/TSV or Parquet file of labelled texts, pairs, rows with
    negatives or scored pairs (`keras_siamese.data.rows`), the HuffPost file, or WordNet's glosses."""

    data: str = setting(
        "wordnet-bundled",
        "a .jsonl/.json, .csv/.tsv or .parquet file of labelled texts (text, label), pairs (anchor, positive), "
        "rows with negatives (anchor, positive, negative_1, ...) or scored pairs (sentence1, sentence2, score); "
        "or wordnet-bundled (the sample shipped with the package) / wordnet-system (Debian's wordnet-base)",
    )
    columns: tuple = setting(
        (), "the text columns of --data, in order (default: every column but the label column, in file order)",
        type=str, renamed_from=("--text-field",),
    )
    label_column: str = setting(
        None, "the column of --data holding each row's class label or score (auto: 'label' or 'score', if any)",
        type=str, renamed_from=("--label-field",),
    )
    huffpost: bool = setting(
        False, "--data is the HuffPost News Category file (headline + description, texts under 10 words dropped)"
    )

    def load(self):
        """The data as `keras_siamese.data.TextRows`; `OSError` or `ValueError` if it cannot be read."""
        from keras_siamese.data import TextRows, load_huffpost, load_rows, load_wordnet_glosses

        if self.data in WORDNET_SOURCES or self.huffpost:
            texts, labels, names = (
                load_wordnet_glosses(source=self.data.split("-")[1]) if self.data in WORDNET_SOURCES
                else load_huffpost(self.data)
            )
            return TextRows.labelled(texts, [names[label] for label in labels], self.data)
        return load_rows(self.data, self.columns or None, self.label_column)


@dataclasses.dataclass
class EncoderSource:
    """A pretrained keras-hub encoder, or a small ALBERT initialised at random for the corpus."""

    encoder: str = setting(
        FROM_CORPUS,
        "a keras-hub preset name or directory, a local Hugging Face directory (BERT/MiniLM, "
        "ALBERT, ...), or a TF Hub-format encoder SavedModel directory (albert_en_base, ...); "
        f"{FROM_CORPUS}: a random ALBERT with a vocabulary trained on the data",
    )
    sequence_length: int = setting(128, "most tokens per text, [CLS] and [SEP] included; longer texts are cut")
    vocabulary_size: int = setting(4000, f"SentencePiece vocabulary size ({FROM_CORPUS} only)")
    num_layers: int = setting(2, f"transformer layers ({FROM_CORPUS} only)")
    hidden_dim: int = setting(128, f"hidden size; the feed-forward size is twice it ({FROM_CORPUS} only)")
    embedding_dim: int = setting(64, f"token embedding size ({FROM_CORPUS} only)")

    def check(self):
        """Raises `ValueError` for settings that cannot build an encoder."""
        check_integers(self, ("sequence_length", "vocabulary_size", "num_layers", "hidden_dim", "embedding_dim"))
        if self.sequence_length < 3:
            raise ValueError(f"sequence_length must be at least 3 ([CLS], [SEP] and a token), got {self.sequence_length}.")
        if self.encoder != FROM_CORPUS and not os.path.isdir(self.encoder) and "://" not in self.encoder:
            import keras_hub

            if self.encoder not in keras_hub.models.Backbone.presets:
                raise ValueError(
                    f"--encoder {self.encoder!r} is not a directory, a kaggle:// or hf:// handle, a keras-hub "
                    f"preset name (such as bert_tiny_en_uncased) or {FROM_CORPUS}."
                )

    @property
    def is_tfhub_saved_model(self):
        """Whether `encoder` is a TF Hub-format SavedModel directory (built as a `HubEncoder`, whose
        `.keras` checkpoints load with `safe_mode=False`: they name the SavedModel)."""
        return os.path.isfile(os.path.join(self.encoder, "saved_model.pb"))

    def build(self, texts):
        """The encoder: a random ALBERT whose vocabulary is trained on `texts`, a `HubEncoder` of a
        TF Hub-format SavedModel (tokenising with its own vocabulary), or a keras-hub preset."""
        from keras_siamese.layers import AlbertEncoder, TextEncoder
        from keras_siamese.layers.hub_encoder import HubEncoder

        if self.encoder == FROM_CORPUS:
            return AlbertEncoder.from_corpus(
                texts,
                vocabulary_size=self.vocabulary_size,
                num_layers=self.num_layers,
                hidden_dim=self.hidden_dim,
                embedding_dim=self.embedding_dim,
                intermediate_dim=2 * self.hidden_dim,
                sequence_length=self.sequence_length,
            )
        if self.is_tfhub_saved_model:
            return HubEncoder(self.encoder, sequence_length=self.sequence_length)
        return TextEncoder.from_preset(self.encoder, sequence_length=self.sequence_length)
