"""ALBERT as a `TextEncoder`: random init from a corpus, or loaded from a directory."""

import io
import re

import keras
import sentencepiece
from keras_hub.models import AlbertBackbone, AlbertTokenizer

from keras_siamese.checks import check_integer
from keras_siamese.layers.hub_encoder import HubEncoder
from keras_siamese.layers.text_encoder import TextEncoder


@keras.saving.register_keras_serializable(package="keras_siamese")
class AlbertEncoder(TextEncoder):
    """An ALBERT `TextEncoder`: token ids (or raw strings) in, ALBERT features out.

    Build one of three ways:
    - `AlbertEncoder.from_corpus(texts, ...)`: a randomly initialised ALBERT
      of any size with a SentencePiece vocabulary trained on `texts`;
    - `AlbertEncoder.from_preset(path)`: a keras-hub preset name or directory,
      or a Hugging Face ALBERT directory (config.json, model.safetensors,
      spiece.model);
    - `AlbertEncoder(backbone, tokenizer)` from keras-hub objects you hold.
    TF Hub SavedModels load with `AlbertEncoder.from_tfhub`, which returns a
    `HubEncoder`.

    Args: as `TextEncoder`.

    Example:
    >>> encoder = AlbertEncoder.from_corpus(texts, vocabulary_size=2000)  # doctest: +SKIP
    >>> encoder(encoder.preprocessor(["a small dog"]))["pooled_output"].shape  # doctest: +SKIP
    TensorShape([1, 128])
    """

    @classmethod
    def from_corpus(
        cls,
        texts,
        vocabulary_size=8000,
        num_layers=2,
        num_heads=2,
        embedding_dim=64,
        hidden_dim=128,
        intermediate_dim=256,
        sequence_length=64,
        dropout=0.0,
        **kwargs,
    ):
        """A randomly initialised ALBERT with a vocabulary trained on `texts`.

        The SentencePiece model (unigram, case-folded) uses ALBERT's special
        pieces: `<pad>`=0, `<unk>`=1, `[CLS]`=2, `[SEP]`=3, `[MASK]`=4.
        """
        tokenizer = AlbertTokenizer(
            proto=train_sentencepiece(texts, vocabulary_size)
        )
        backbone = AlbertBackbone(
            vocabulary_size=tokenizer.vocabulary_size(),
            num_layers=num_layers,
            num_heads=num_heads,
            embedding_dim=embedding_dim,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            dropout=dropout,
            max_sequence_length=max(sequence_length, 128),
        )
        return cls(backbone, tokenizer, sequence_length=sequence_length, **kwargs)

    @classmethod
    def from_preset(cls, preset, sequence_length=128, **kwargs):
        """ALBERT from a keras-hub preset name or a local directory.

        Directories may be keras-hub presets or Hugging Face ALBERT
        checkpoints (config.json, model.safetensors, spiece.model), which
        keras-hub converts on load. Other arguments go to the constructor.

        Example:
        >>> encoder = AlbertEncoder.from_preset("albert_base_en_uncased")  # doctest: +SKIP
        >>> encoder = AlbertEncoder.from_preset("path/to/hf-albert")  # doctest: +SKIP
        """
        backbone = AlbertBackbone.from_preset(preset)
        tokenizer = AlbertTokenizer.from_preset(preset)
        return cls(backbone, tokenizer, sequence_length=sequence_length, **kwargs)

    @staticmethod
    def from_tfhub(encoder, preprocessor=None, sequence_length=128, **kwargs):
        """ALBERT from TF Hub-format SavedModels (albert_en_base + albert_en_preprocess).

        Returns a `HubEncoder`: the weights stay inside the SavedModel's graph,
        so it is a different class with the same interface as an
        AlbertEncoder (a `preprocessor`, tokens or strings in, the same
        outputs). Without `preprocessor`, texts are tokenised with the
        encoder's own SentencePiece asset.

        Example:
        >>> encoder = AlbertEncoder.from_tfhub(
        ...     "https://tfhub.dev/tensorflow/albert_en_base/3",
        ...     "https://tfhub.dev/tensorflow/albert_en_preprocess/3")  # doctest: +SKIP
        """
        return HubEncoder(
            encoder, preprocessor, sequence_length=sequence_length, **kwargs
        )


def train_sentencepiece(texts, vocabulary_size):
    """Serialized SentencePiece model with ALBERT's special pieces, trained on `texts`.

    Example:
    >>> proto = train_sentencepiece(texts, vocabulary_size=2000)  # doctest: +SKIP
    """
    vocabulary_size = check_integer(vocabulary_size, "vocabulary_size")
    texts = [text for text in texts if text and text.strip()]
    if not texts:
        raise ValueError("Cannot train a vocabulary on an empty corpus.")
    model = io.BytesIO()
    try:
        _train_unigram(texts, vocabulary_size, model)
    except RuntimeError as error:
        needed = re.search(r"required_chars\. \d+ vs (\d+)", str(error))
        if needed is None:
            raise
        raise ValueError(
            f"vocabulary_size={vocabulary_size} is too small for this corpus: it needs at least "
            f"{needed.group(1)} pieces (one per distinct character, plus ALBERT's special pieces)."
        ) from None
    return model.getvalue()


def _train_unigram(texts, vocabulary_size, model):
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=vocabulary_size,
        model_type="unigram",
        normalization_rule_name="nmt_nfkc_cf",
        pad_id=0,
        unk_id=1,
        bos_id=2,
        eos_id=3,
        pad_piece="<pad>",
        unk_piece="<unk>",
        bos_piece="[CLS]",
        eos_piece="[SEP]",
        user_defined_symbols="[MASK]",
        hard_vocab_limit=False,
        minloglevel=2,
    )
