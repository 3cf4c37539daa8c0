"""The `keras-siamese` command line: train, compare, export, check-serving.

Every flag of `train` and `compare` comes from a settings dataclass
(`TrainingConfig`, `ComparisonConfig`, and the `CorpusSource` and
`EncoderSource` both share), so the Python API and the flags cannot drift.
"""

import argparse
import os
import sys
import tempfile

from keras_siamese.precision import SERVING_PRECISIONS

# Lines TensorFlow's C++ runtime prints while it loads, before any log level
# applies (they precede absl::InitializeLog): facts about this machine, not problems.
_STARTUP_NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "Could not find cuda drivers on your machine",
)


def program():
    """The `keras-siamese` console script: `main` with TensorFlow's oneDNN graph rewrites on.

    TensorFlow turns them on by default only on CPUs with AVX-512 VNNI or BF16, or AMX; on an
    AVX2 CPU they made encoding 1.36-1.43x faster (benchmarks/README.md). An environment that
    sets `TF_ENABLE_ONEDNN_OPTS` keeps its setting.
    """
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    return main()


def main(argv=None):
    """Runs the `keras-siamese` command line `argv` (default: this process's arguments)."""
    # Errors of the C++ runtime are for debugging (CUDA probing on a CPU machine logs one);
    # failures reach the user as Python exceptions. Workers that `--workers` starts inherit it.
    if os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3") == "3":
        _import_tensorflow_quietly()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return args.run(args)


def build_parser():
    """The `keras-siamese` argument parser, one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="keras-siamese",
        description="Train sentence-embedding models with triplet mining and ship them to TF Serving.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train_command(commands)
    _add_compare_command(commands)
    _add_export_command(commands)
    _add_check_serving_command(commands)
    return parser


def _import_tensorflow_quietly():
    """Imports TensorFlow with its start-up lines held back; anything else it prints is passed on."""
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
        captured.seek(0)
        lines = captured.read().decode("utf-8", "replace").splitlines(keepends=True)
    sys.stderr.write("".join(line for line in lines if not any(noise in line for noise in _STARTUP_NOISE)))


def _settings_command(commands, name, help, settings, run, check=None):
    """A subcommand whose flags are the fields of the settings instance `settings`.

    `run(settings, rows, args)` gets a checked copy, the loaded data
    (`keras_siamese.data.TextRows`) and the parsed arguments; a setting that
    cannot run, data that cannot be read, or data that `check(settings, args,
    rows)` refuses, is one argparse error line (exit status 2).
    """
    from keras_siamese.settings import add_setting_arguments, settings_from_arguments

    parser = commands.add_parser(name, help=help, description=help)
    add_setting_arguments(parser, settings)

    def run_command(args):
        configured = settings_from_arguments(settings, args)
        try:
            configured.check()
            rows = configured.corpus.load()
            if check is not None:
                check(configured, args, rows)
        except (OSError, ValueError) as error:
            parser.error(str(error))
        return run(configured, rows, args)

    parser.set_defaults(run=run_command)
    return parser


def _add_train_command(commands):
    from keras_siamese.training import TrainingConfig

    def run(config, rows, args):
        from keras_siamese.cluster import is_watched

        if args.workers > 1 or (os.environ.get("TF_CONFIG") and not is_watched()):
            return _launch_workers(config, args)
        return _train(config, rows)

    parser = _settings_command(
        commands, "train",
        "train on labelled texts, pairs, rows with negatives or scored pairs (default: the bundled WordNet "
        "glosses and a small ALBERT from scratch), evaluate, checkpoint and export for TF Serving",
        TrainingConfig(), run, check=_check_training_arguments,
    )
    parser.add_argument(
        "--workers", type=int, default=1,
        help="train on this many local worker processes (TF_CONFIG on free localhost ports). With TF_CONFIG "
        "set, this process is one worker of the cluster it names (default: 1)",
    )
    parser.add_argument(
        "--cluster-timeout", type=int, default=120,
        help="seconds to wait for every worker of the cluster to join before giving up (default: 120)",
    )


def _check_training_arguments(config, args, rows):
    """Raises `ValueError` for data the loss cannot train on, or a cluster this command cannot start or join."""
    from keras_siamese.checks import check_integer
    from keras_siamese.cluster import check_port_free, cluster_task

    check_integer(args.workers, "workers")
    check_integer(args.cluster_timeout, "cluster_timeout")
    task = cluster_task()
    config.check_data(rows, workers=args.workers if task is None else None)
    if task is not None and args.workers > 1:
        raise ValueError(f"TF_CONFIG already names a cluster of {task.num_workers} workers; leave out workers.")
    if task is not None:
        check_port_free(task)


def _launch_workers(config, args):
    """Starts the workers and watches them: each is this command with `--workers 1`."""
    from keras_siamese.cluster import local_cluster, run_workers

    tf_configs = local_cluster(args.workers) if args.workers > 1 else [os.environ["TF_CONFIG"]]
    return run_workers(
        [sys.executable, "-m", "keras_siamese", *args.argv, "--workers", "1"], tf_configs, args.cluster_timeout,
        rerun_hint=f" Rerun the same command to resume from the last backup in {config.output_dir}.",
    )


def _train(config, rows):
    """Runs the main job; a diverged training, a lost worker, a damaged backup or data the settings
    cannot train on (e.g. mined negatives left fewer rows than a batch) is one line."""
    import tensorflow as tf

    from keras_siamese.artifacts import UnreadableFileError
    from keras_siamese.training import TrainingDataError, train

    try:
        train(config, rows=rows)
    except FloatingPointError as error:  # diverged: the user's settings, not a bug
        print(f"keras-siamese train: {error}", file=sys.stderr)
        return 1
    except tf.errors.UnavailableError as error:  # another worker of the cluster stopped
        reason = str(error).strip().splitlines()[0]
        print(f"keras-siamese train: error: a worker of the cluster stopped ({reason}); rerun every worker "
              f"to resume from the last backup in {config.output_dir}.", file=sys.stderr)
        return 1
    except (UnreadableFileError, TrainingDataError) as error:  # a damaged backup, or data the settings cannot train on
        print(f"keras-siamese train: error: {error}", file=sys.stderr)
        return 2
    return 0


def _add_compare_command(commands):
    import dataclasses

    from keras_siamese.comparison.protocol import ComparisonConfig
    from keras_siamese.settings import setting
    from keras_siamese.sources import CorpusSource, EncoderSource

    @dataclasses.dataclass
    class CompareSettings:
        corpus: CorpusSource = setting(CorpusSource(), "data")
        encoder_source: EncoderSource = setting(EncoderSource(), "encoder")
        protocol: ComparisonConfig = setting(ComparisonConfig(), "protocol")
        figures: bool = setting(True, "write the PNG figures (needs matplotlib)")

        def check(self):
            self.encoder_source.check()
            self.protocol.check()

    def run(settings, rows, args):
        from keras_siamese.comparison import plots_available, run_comparison
        from keras_siamese.comparison.plots import MISSING_MATPLOTLIB

        figures = settings.figures and plots_available()
        if settings.figures and not figures:
            print(f"[compare] {MISSING_MATPLOTLIB}", file=sys.stderr)
        texts, labels, class_names = rows.labelled_texts()
        encoder = settings.encoder_source.build(texts)
        run_comparison(encoder, texts, labels, settings.protocol, class_names, figures=figures)
        return 0

    _settings_command(
        commands, "compare",
        "train frozen, trained and siamese variants of one encoder and compare them (the study's protocol)",
        CompareSettings(), run, check=lambda settings, args, rows: rows.labelled_texts(),
    )


EXPORT_FORMATS = ("saved-model", "sentence-transformers", "preset")


def _add_export_command(commands):
    parser = commands.add_parser(
        "export",
        help="export a .keras checkpoint for TF Serving (atomic, op-checked), sentence-transformers or keras-hub",
        description="--format saved-model (default) writes OUT/<version>/: a SavedModel with serving_default "
        "(text -> embedding) and a signature per prompt, metadata in assets.extra, a model card and, with "
        "--warmup-texts, TF Serving warmup records. --format sentence-transformers writes the directory OUT that "
        "SentenceTransformer(OUT) loads; --format preset a keras-hub preset directory OUT "
        "(SentenceEmbedder.from_preset, keras_hub.upload_preset). Exit status 0 on success, 1 if the export was "
        "refused or failed, 2 if the arguments or the model file are bad.",
    )
    parser.add_argument("--model", required=True, help="a .keras file (model.save / ModelCheckpoint); required")
    parser.add_argument("--out", required=True, help="the model's base path, e.g. serving/NAME (saved-model), or "
                        "a new directory (the other formats); required")
    parser.add_argument("--format", default="saved-model", choices=EXPORT_FORMATS,
                        help="what to write (default: saved-model)")
    parser.add_argument("--version", type=int, default=None,
                        help="version number (default: one more than the largest there)")
    parser.add_argument("--warmup-texts", help="file with one sample text per line for warmup records "
                        "(default: none)")
    parser.add_argument("--signatures", default="text", choices=["text", "text,tokens", "tokens"],
                        help="'tokens' adds a token-id signature; 'tokens' alone needs no TF Text ops "
                        "(default: text)")

    parser.add_argument("--truncate-dim", type=int, default=None,
                        help="serve the first D dimensions, L2-normalised again (a Matryoshka-trained model; "
                        "default: all)")
    parser.add_argument("--precision", default=None, choices=SERVING_PRECISIONS,
                        help="what the served graph computes in; int8 runs the encoder's matrix products through "
                        "oneDNN, calibrated on --calibration-texts, and needs TF Serving of this TensorFlow version "
                        "(default: the model's own)")
    parser.add_argument("--calibration-texts", help="file with one text per line like those the model will serve, "
                        "a few hundred (required with --precision int8)")

    parser.set_defaults(run=lambda args: _run_export(parser, args))


def _run_export(parser, args):
    """Writes the export; exit status 0, 1 if refused or failed, 2 (one argparse line) for bad arguments."""
    from keras_siamese.export import export_saved_model, export_sentence_transformers
    from keras_siamese.quantization import Int8UnavailableError
    from keras_siamese.export.versions import check_version
    from keras_siamese.losses.matryoshka import check_truncate_dim
    from keras_siamese.models import load_model

    try:  # what the user gave: one argparse line, exit status 2
        if args.format != "saved-model":
            given = [flag for flag, value in (("--version", args.version), ("--warmup-texts", args.warmup_texts),
                                              ("--truncate-dim", args.truncate_dim), ("--precision", args.precision),
                                              ("--calibration-texts", args.calibration_texts)) if value is not None]
            if given or args.signatures != "text":
                raise ValueError(f"{', '.join(given) or '--signatures'} applies to --format saved-model only.")
        if args.version is not None:
            check_version(args.version, "--version")
        warmup_texts = _read_lines(args.warmup_texts) if args.warmup_texts else None
        if (args.precision == "int8") != (args.calibration_texts is not None):
            raise ValueError("--precision int8 needs --calibration-texts, and --calibration-texts goes with it only.")
        calibration_texts = _read_lines(args.calibration_texts) if args.calibration_texts else None
        model = load_model(args.model)
        if args.truncate_dim is not None:
            check_truncate_dim(args.truncate_dim, model.outputs[0].shape[-1])
    except (OSError, ValueError) as error:
        parser.error(str(error))
    try:
        if args.format == "sentence-transformers":
            path = export_sentence_transformers(model, args.out)
        elif args.format == "preset":
            path = model.save_to_preset(args.out)
        else:
            path = export_saved_model(model, args.out, args.version, warmup_texts=warmup_texts,
                                      signatures=tuple(args.signatures.split(",")), truncate_dim=args.truncate_dim,
                                      compute_dtype=args.precision, calibration_texts=calibration_texts)
    except (OSError, ValueError, Int8UnavailableError) as error:  # refused (UnsupportedOpsError is a ValueError) or failed
        print(f"export failed: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _add_check_serving_command(commands):
    from keras_siamese.export.serving_check import ServingLoad

    parser = commands.add_parser(
        "check-serving",
        help="load a version directory as TF Serving does (C++ loader) and run it",
        description="Serving check without Docker: load a SavedModel through TensorFlow's C++ loader.",
    )
    parser.add_argument("path", help="a version directory: base_path/<version>/")
    parser.add_argument("--texts", help="file with one text per line ('-': stdin) "
                        "(default: a few mixed probe texts)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="texts per request (default: all in one)")
    parser.add_argument("--signature", default="serving_default",
                        help="the string signature to run (default: serving_default)")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the warmup replay (default: replay the version's warmup file)")
    parser.add_argument("--load-threads", type=int, default=0,
                        help="then send --load-requests mixed requests from this many threads at once "
                        "and compare each answer with the same request alone (default: 0, no load)")
    parser.add_argument("--load-requests", type=int, default=ServingLoad.requests,
                        help=f"requests per thread, batches of 1 to {ServingLoad.max_batch_size} of the "
                        f"texts (default: {ServingLoad.requests})")
    parser.set_defaults(run=lambda args: _run_check_serving(parser, args))


def _run_check_serving(parser, args):
    """Prints the report; exit status 0 if the model passed, 1 if it failed, 2 (one argparse
    line) if the arguments, the texts file or the version directory cannot be used."""
    from keras_siamese.export import ServingCheckError, UnsupportedOpsError, check_serving
    from keras_siamese.export.serving_check import DEFAULT_TEXTS, ServingLoad

    try:
        texts = _read_lines(args.texts) if args.texts else DEFAULT_TEXTS
        load = ServingLoad(args.load_threads, args.load_requests) if args.load_threads else None
        report = check_serving(args.path, texts, batch_size=args.batch_size,
                               signature_name=args.signature, warmup=not args.no_warmup, load=load)
    except (ServingCheckError, UnsupportedOpsError) as error:
        print(f"serving check failed: {error}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:
        parser.error(str(error))
    print(report.summary())
    return 0


def _read_lines(path):
    """The lines of a UTF-8 text file (`-`: stdin), without their line ends (`--texts`, `--warmup-texts`)."""
    from keras_siamese.artifacts import reading

    if path == "-":
        return [line.rstrip("\n") for line in sys.stdin]
    with reading(path, "texts file (UTF-8, one text per line)"), open(path, encoding="utf-8") as file:
        return [line.rstrip("\n") for line in file]


if __name__ == "__main__":
    sys.exit(program())
