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


if __name__ == "__main__":
    sys.exit(main())
