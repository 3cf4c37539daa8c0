"""`keras-siamese compare`: the study's comparison on a labelled corpus, from the command line."""

import argparse
import dataclasses
import os
import sys

from keras_siamese.comparison.plots import MISSING_MATPLOTLIB, plots_available, write_figures
from keras_siamese.comparison.protocol import ComparisonConfig, compare
from keras_siamese.comparison.report import markdown_table, write_comparison

WORDNET_SOURCES = ("wordnet-bundled", "wordnet-system")
FROM_CORPUS = "albert-from-corpus"


def run_comparison(encoder, texts, labels, config=None, class_names=None, figures=True):
    """`compare`, then writes every file and prints the table; returns `(comparison, paths)`.

    Without matplotlib the figures are skipped with a message saying how to
    install it; everything else is still written.

    Example:
    >>> comparison, paths = run_comparison(encoder, texts, labels)  # doctest: +SKIP
    """
    config = config or ComparisonConfig()
    comparison = compare(encoder, texts, labels, config, class_names=class_names)
    paths = write_comparison(comparison, config.output_dir)
    if figures and plots_available():
        paths["figures"] = write_figures(comparison, config.output_dir)
    elif figures:
        print(f"[compare] {MISSING_MATPLOTLIB}", file=sys.stderr)
    print(markdown_table(comparison.metrics, len(comparison.train_labels), len(comparison.test_labels)))
    print(f"[compare] results in {os.path.abspath(config.output_dir)}")
    return comparison, paths


def add_compare_command(subparsers):
    """Adds the `compare` subcommand to an `argparse` subparsers object.

    Example:
    >>> parser = argparse.ArgumentParser()
    >>> add_compare_command(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["compare", "--epochs", "2"]).epochs
    2
    """
    parser = subparsers.add_parser(
        "compare",
        help="train frozen, trained and siamese variants of one encoder and compare them (the study's protocol)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        default="wordnet-bundled",
        help="a .jsonl/.json or .csv/.tsv file of labelled texts, or wordnet-bundled / wordnet-system",
    )
    data.add_argument("--text-field", default="text", help="field or column holding the text")
    data.add_argument("--label-field", default="label", help="field or column holding the label")
    data.add_argument(
        "--huffpost", action="store_true", help="--data is the HuffPost News Category file (the study's recipe)"
    )
    model = parser.add_argument_group("encoder")
    model.add_argument(
        "--encoder",
        default=FROM_CORPUS,
        help=f"a keras-hub preset name or directory (Hugging Face checkpoints too), or {FROM_CORPUS} "
        "for a small random ALBERT with a vocabulary trained on the data",
    )
    model.add_argument("--sequence-length", type=int, default=128)
    model.add_argument("--vocabulary-size", type=int, default=4000, help=f"{FROM_CORPUS} only")
    model.add_argument("--num-layers", type=int, default=2, help=f"{FROM_CORPUS} only")
    model.add_argument("--hidden-dim", type=int, default=128, help=f"{FROM_CORPUS} only")
    protocol = parser.add_argument_group("protocol")
    for field in dataclasses.fields(ComparisonConfig):
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, tuple):
            protocol.add_argument(flag, type=_comma_list(field.default), default=field.default, help="comma-separated")
        elif isinstance(field.default, bool):
            protocol.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        else:
            protocol.add_argument(flag, type=type(field.default), default=field.default)
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    parser.set_defaults(run=_run_command)


def load_corpus(args):
    """`(texts, labels, class_names)` named by the command's data arguments."""
    if args.data in WORDNET_SOURCES:
        from keras_siamese.data import load_wordnet_glosses

        return load_wordnet_glosses(source=args.data.split("-")[1])
    from keras_siamese.data import load_csv, load_huffpost, load_jsonl

    if args.huffpost:
        return load_huffpost(args.data)
    extension = os.path.splitext(args.data)[1].lower()
    if extension in (".jsonl", ".json"):
        return load_jsonl(args.data, args.text_field, args.label_field)
    if extension in (".csv", ".tsv"):
        return load_csv(args.data, args.text_field, args.label_field, delimiter="\t" if extension == ".tsv" else ",")
    raise ValueError(
        f"--data must be a .jsonl, .json, .csv or .tsv file, or one of {WORDNET_SOURCES}; got {args.data!r}."
    )


def build_encoder(args, texts):
    """The encoder named by `--encoder`."""
    if args.encoder == FROM_CORPUS:
        from keras_siamese.layers import AlbertEncoder

        return AlbertEncoder.from_corpus(
            texts,
            vocabulary_size=args.vocabulary_size,
            num_layers=args.num_layers,
            hidden_dim=args.hidden_dim,
            intermediate_dim=2 * args.hidden_dim,
            sequence_length=args.sequence_length,
        )
    from keras_siamese.layers import TextEncoder

    return TextEncoder.from_preset(args.encoder, sequence_length=args.sequence_length)


def _run_command(args):
    if not args.no_figures and not plots_available():
        print(f"[compare] {MISSING_MATPLOTLIB}", file=sys.stderr)
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(ComparisonConfig)}
    config = ComparisonConfig(**values)
    config.check()
    texts, labels, class_names = load_corpus(args)
    encoder = build_encoder(args, texts)
    run_comparison(encoder, texts, labels, config, class_names, figures=not args.no_figures and plots_available())
    return 0


def _comma_list(default):
    item_type = type(default[0]) if default else str

    def parse(value):
        return tuple(item_type(item) for item in value.split(",") if item.strip())

    return parse
