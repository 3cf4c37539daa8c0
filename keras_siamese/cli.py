"""The `keras-siamese` command line."""

import argparse
import dataclasses
import os
import sys


def main(argv=None):
    """Entry point of the `keras-siamese` console script."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(
        prog="keras-siamese",
        description="Train sentence-embedding models with triplet mining and ship them to TF Serving.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train_command(commands)
    _add_export_command(commands)
    _add_check_serving_command(commands)
    from keras_siamese.comparison import add_compare_command

    add_compare_command(commands)
    args = parser.parse_args(argv)
    return args.run(args)


def _add_train_command(commands):
    from keras_siamese.training import TrainingConfig

    parser = commands.add_parser(
        "train",
        help="train on labelled texts (default: the bundled WordNet glosses), evaluate, export",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for field in dataclasses.fields(TrainingConfig):
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            type=type(field.default),
            default=field.default,
        )

    def run(args):
        from keras_siamese.training import train

        values = {field.name: getattr(args, field.name) for field in dataclasses.fields(TrainingConfig)}
        train(TrainingConfig(**values))
        return 0

    parser.set_defaults(run=run)


def _add_export_command(commands):
    parser = commands.add_parser(
        "export",
        help="export a .keras checkpoint as a TF Serving version directory (atomic, op-checked)",
        description="Write OUT/<version>/: a SavedModel with serving_default (text -> embedding), "
        "metadata in assets.extra and, with --warmup-texts, TF Serving warmup records. "
        "Exit status 0 on success, 1 if the export was refused or failed.",
    )
    parser.add_argument("--model", required=True, help="a .keras file (model.save / ModelCheckpoint)")
    parser.add_argument("--out", required=True, help="the model's base path, e.g. serving/NAME")
    parser.add_argument("--version", type=int, default=None,
                        help="version number (default: one more than the largest there)")
    parser.add_argument("--warmup-texts", help="file with one sample text per line for warmup records")
    parser.add_argument("--signatures", default="text", choices=["text", "text,tokens", "tokens"],
                        help="'tokens' adds a token-id signature; 'tokens' alone needs no TF Text ops")

    def run(args):
        import keras

        import keras_siamese.models  # noqa: F401  registers the layers and models for loading
        from keras_siamese.export import export_saved_model

        try:
            warmup_texts = None
            if args.warmup_texts:
                with open(args.warmup_texts, encoding="utf-8") as file:
                    warmup_texts = [line.rstrip("\n") for line in file]
            model = keras.saving.load_model(args.model)
            path = export_saved_model(model, args.out, args.version, warmup_texts=warmup_texts,
                                      signatures=tuple(args.signatures.split(",")))
        except (OSError, ValueError) as error:  # UnsupportedOpsError is a ValueError
            print(f"export failed: {error}", file=sys.stderr)
            return 1
        print(path)
        return 0

    parser.set_defaults(run=run)


def _add_check_serving_command(commands):
    from keras_siamese.export import serving_check

    parser = commands.add_parser(
        "check-serving",
        help="load a version directory as TF Serving does (C++ loader) and run it",
        description=serving_check.__doc__.splitlines()[0],
    )
    serving_check.add_arguments(parser)
    parser.set_defaults(run=serving_check.run)


if __name__ == "__main__":
    sys.exit(main())
