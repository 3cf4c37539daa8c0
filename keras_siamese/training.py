"""The main job: fine-tune (or train from scratch) an encoder on labelled texts, measured against
the untrained encoder every epoch; checkpoint, export the best epoch."""

import dataclasses
import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from keras_siamese.artifacts import UnreadableFileError
from keras_siamese.atomic import atomic_file_path
from keras_siamese.cluster import cluster_task, connect, worker_backup_dir
from keras_siamese.data import class_balanced_batches, train_test_split_by_label
from keras_siamese.evaluation import BestEpoch, RetrievalEvaluation
from keras_siamese.export import ServingCheckBuildError, check_serving, export_saved_model
from keras_siamese.layers.pooling import POOLING_MODES
from keras_siamese.losses.distances import check_margin
from keras_siamese.models import SentenceEmbedder, TripletSemiHard, load_model
from keras_siamese.models.triplet_semihard import MARGIN
from keras_siamese.optimizers import check_fine_tuning_settings, fine_tuning_optimizer
from keras_siamese.precision import (
    MATMUL_PRECISIONS,
    PRECISIONS,
    check_matmul_precision,
    check_precision,
    set_matmul_precision,
    training_precision,
)
from keras_siamese.settings import check_fraction, check_integers, check_positive_number, setting
from keras_siamese.sources import FROM_CORPUS, CorpusSource, EncoderSource

WARMUP_TEXTS = 8  # held-out texts in the warmup records (batches of 1 and 8)
SERVING_CHECK_TEXTS = 64
CHECKPOINT_NAME = "epoch{epoch:02d}.keras"  # one per epoch, in OUTPUT_DIR/checkpoints


PRETRAINED_LEARNING_RATE = 1e-4
FROM_SCRATCH_LEARNING_RATE = 1e-3
FROM_SCRATCH_OUTPUT_UNITS = 64


@dataclasses.dataclass
class TrainingConfig:
    """Settings of `train`; the defaults finish in minutes on a 2-core CPU.

    The defaults train a small ALBERT from scratch on the WordNet glosses that
    ship with the package, the 45 lexicographer files as labels. Settings left
    as None are chosen by the encoder's kind (benchmarks/README.md, fine-tuning
    quality, has the measurements):
    - a pretrained encoder (`encoder_source`) keeps its geometry: no
      projection head (tokens -> encoder -> pooling -> L2), AdamW at 1e-4;
    - the from-scratch ALBERT gets the study's Dense(64, relu) -> Dense(64)
      head and 1e-3.
    Both warm the learning rate up linearly over `warmup_fraction` of the
    steps, then decay it (cosine) to 0.

    Example:
    >>> config = TrainingConfig(epochs=1, corpus=CorpusSource("news.jsonl", label_field="topic"))
    >>> config.check()
    """

    corpus: CorpusSource = setting(CorpusSource(), "data")
    encoder_source: EncoderSource = setting(EncoderSource(sequence_length=48), "encoder")
    output_dir: str = setting("runs/wordnet", "checkpoints, summary.json and serving/ go here")
    model_name: str = setting("wordnet", "the TF Serving model name: the export goes to OUTPUT_DIR/serving/NAME/<version>")
    test_fraction: float = setting(0.1, "fraction of each class held out to measure retrieval, every epoch")
    pooling: str = setting("mean", "how token states become one vector per text", POOLING_MODES)
    output_units: int = setting(
        None,
        "size of a projection head Dense(units, relu) -> Dense(units) before L2 normalisation, 0 for none "
        f"(auto: {FROM_SCRATCH_OUTPUT_UNITS} for {FROM_CORPUS}, none for a pretrained encoder)",
        type=int,
    )
    margin: float = setting(MARGIN, "triplet margin of the semi-hard loss (embeddings are unit vectors: distances in [0, 2])")
    classes_per_batch: int = setting(16, "classes in each training batch (P)")
    samples_per_class: int = setting(4, "texts of each class in a batch (K)")
    learning_rate: float = setting(
        None,
        f"AdamW's peak learning rate (auto: {FROM_SCRATCH_LEARNING_RATE:g} for {FROM_CORPUS}, "
        f"{PRETRAINED_LEARNING_RATE:g} for a pretrained encoder)",
        type=float,
    )
    weight_decay: float = setting(0.01, "AdamW's decoupled weight decay (0: plain Adam)")
    warmup_fraction: float = setting(0.1, "fraction of the steps over which the learning rate rises linearly from 0")
    lazy_adam: bool = setting(
        False,
        "LazyAdam: update only the embedding rows each batch looks up, not the whole vocabulary "
        "(rows a batch leaves out keep their moments; benchmarks/README.md has the speed)",
    )
    epochs: int = setting(4, "training epochs; held-out retrieval is measured and a .keras checkpoint kept after each")
    steps_per_epoch: int = setting(250, "batches per epoch")
    backup_steps: int = setting(50, "steps between the backups in OUTPUT_DIR/backup that a rerun resumes from")
    seed: int = setting(0, "seed of the split, the batches and the initial weights")
    precision: str = setting(
        "float32",
        "the encoder's arithmetic: bfloat16 and float16 are Keras' mixed precision (float32 variables, "
        "losses and embeddings; float16 with loss scaling). bfloat16 is faster on GPUs and on CPUs with "
        "bfloat16 instructions; the export computes in the same precision",
        PRECISIONS,
    )
    matmul_precision: str = setting(
        None,
        "bf16 runs float32 matrix products with bfloat16 inputs and float32 sums (oneDNN's fpmath mode, "
        "applied on CPUs with AMX; variables, activations and gradients stay float32); "
        "float32 keeps them whole; auto: the environment's TF_SET_ONEDNN_FPMATH_MODE (float32 unless BF16)",
        MATMUL_PRECISIONS, type=str,
    )

    @property
    def pretrained(self):
        """Whether the encoder comes with trained weights (anything but the from-scratch ALBERT)."""
        return self.encoder_source.encoder != FROM_CORPUS

    def resolved(self):
        """A copy with every None setting chosen for the encoder's kind."""
        return dataclasses.replace(
            self,
            output_units=(0 if self.pretrained else FROM_SCRATCH_OUTPUT_UNITS)
            if self.output_units is None else self.output_units,
            learning_rate=(PRETRAINED_LEARNING_RATE if self.pretrained else FROM_SCRATCH_LEARNING_RATE)
            if self.learning_rate is None else self.learning_rate,
        )

    def check(self):
        """Raises `ValueError` for settings that cannot run."""
        self.encoder_source.check()
        check_integers(self, ("epochs", "steps_per_epoch", "backup_steps"))
        check_integers(self, ("classes_per_batch", "samples_per_class"), minimum=2)
        check_integers(self, ("seed",), minimum=0)
        if self.output_units is not None:
            check_integers(self, ("output_units",), minimum=0)
        check_fraction(self, "test_fraction")
        if self.learning_rate is not None:
            check_positive_number(self, "learning_rate")
        check_fine_tuning_settings(1e-3, 1, self.warmup_fraction, self.weight_decay)
        check_margin(self.margin)
        check_precision(self.precision)
        if self.matmul_precision is not None:
            check_matmul_precision(self.matmul_precision, "matmul_precision")
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {self.pooling!r}.")
        if not self.model_name or os.sep in self.model_name:
            raise ValueError(f"model_name must be a non-empty name without {os.sep!r}, got {self.model_name!r}.")
        task = cluster_task()
        if task is not None:
            self.check_workers(task.num_workers)

    def check_workers(self, workers):
        """Raises `ValueError` unless the global batch splits evenly over `workers` workers."""
        if (self.classes_per_batch * self.samples_per_class) % workers:
            raise ValueError(
                f"The global batch of {self.classes_per_batch} x {self.samples_per_class} texts does not split "
                f"evenly over {workers} workers."
            )


def train(config=None, texts=None, labels=None):
    """Runs the main job and returns a summary dict.

    Trains `TripletSemiHard` with class-balanced batches and measures held-out
    retrieval (hit@1, recall@5 of held-out texts against training texts, by
    label) for the untrained encoder's own embedding (its pooling + L2, no
    trained layer: the baseline to beat) and after every epoch. It keeps a
    `.keras` checkpoint per epoch, exports the best epoch as a SavedModel for
    TF Serving (with warmup records from held-out texts), says plainly when no
    epoch beat the untrained encoder, loads the export with TF Serving's C++
    loader when a C++ compiler is there (`keras_siamese.export.check_serving`)
    and prints how to serve and query it. Pass `texts` and `labels` to train
    on your own data instead of the configured corpus. Training backs itself
    up every `backup_steps` steps in `output_dir/backup`; rerun on the same
    `output_dir` after a crash or a kill and it resumes where the last backup
    left it, ending with the weights of an uninterrupted run.

    With a `TF_CONFIG` in the environment this process is one worker of that
    cluster (`MultiWorkerMirroredStrategy`; `keras-siamese train --workers N`
    starts N on this machine): each worker reads its slice of the same global
    batches and the loss mines them whole. Only the chief measures,
    checkpoints, exports and writes the summary; the other workers back up to a
    temporary directory (seeded from the chief's backup, so a rerun resumes on
    every worker: the output directory must be shared) and return
    `{"worker": ..., "final_loss": ...}`.

    Example:
    >>> summary = train(TrainingConfig(epochs=1, steps_per_epoch=20))  # doctest: +SKIP
    """
    config = prepare(config)
    task = cluster_task()
    strategy = connect() if task is not None else tf.distribute.get_strategy()
    keras.utils.set_random_seed(config.seed)
    split = split_corpus(config, texts, labels, task)
    model, encoder, batches = build_training(config, split, strategy, task)
    held_out = HeldOutMeasurement(config, split, encoder) if task is None or task.is_chief else None
    history, seconds = fit_resumably(config, model, batches, held_out, task)
    if held_out is None:
        return {"worker": task.name, "final_loss": float(history.history["loss"][-1])}
    return export_best_epoch(config, split, held_out, history, seconds)


def prepare(config):
    """`config` (default: `TrainingConfig()`) checked, its automatic settings resolved; applies its
    matmul precision, which must precede the first matrix product it governs."""
    config = config or TrainingConfig()
    config.check()
    config = config.resolved()
    if config.matmul_precision is not None:
        set_matmul_precision(config.matmul_precision)
    return config


@dataclasses.dataclass
class CorpusSplit:
    """The labelled texts `train` trains on and the held-out ones it measures with."""

    train_texts: list
    train_labels: np.ndarray
    test_texts: list
    test_labels: np.ndarray


def split_corpus(config, texts=None, labels=None, task=None):
    """The corpus (`texts`/`labels`, or `config.corpus`) split by label; the chief says how big it is."""
    if texts is None:
        texts, labels, _ = config.corpus.load()
    split = CorpusSplit(*train_test_split_by_label(texts, labels, test_fraction=config.test_fraction, seed=config.seed))
    if task is None or task.is_chief:
        print(
            f"Corpus {config.corpus.data}: {len(split.train_texts)} training and {len(split.test_texts)} held-out "
            f"texts, {len(set(np.asarray(split.train_labels).tolist()))} classes"
            + (f", {task.num_workers} workers." if task is not None else ".")
        )
    return split


def build_training(config, split, strategy, task=None):
    """(compiled model, encoder, batches): class-balanced batches of the training texts (checked
    against the corpus before the model is built), the model built and compiled under `strategy`."""

    def batches_for(input_context=None):
        return class_balanced_batches(
            split.train_texts, split.train_labels, classes_per_batch=config.classes_per_batch,
            samples_per_class=config.samples_per_class, seed=config.seed, batches_per_epoch=config.steps_per_epoch,
            input_context=input_context,
        )

    batches = batches_for()
    with strategy.scope(), training_precision(config.precision):
        encoder = config.encoder_source.build(split.train_texts)
        model = build_model(config, encoder)
        model.compile(optimizer=fine_tuning_optimizer(
            config.learning_rate, config.epochs * config.steps_per_epoch, config.warmup_fraction, config.weight_decay,
            lazy=config.lazy_adam,
        ))
    if task is not None:
        batches = model.distributed_batches(batches_for)
    return model, encoder, batches


def build_model(config, encoder):
    """The main job's untrained model: `encoder`, `config`'s pooling, its projection head if
    `config.output_units` (resolved) asks for one, and L2 normalisation.

    Example:
    >>> model = build_model(TrainingConfig().resolved(), encoder)  # doctest: +SKIP
    >>> model.predict(["a small dog"]).shape  # doctest: +SKIP
    (1, 64)
    """
    units = config.output_units or None
    return TripletSemiHard.from_encoder(
        encoder, pooling=config.pooling, output_units=units, hidden_units=(units,) if units else (), margin=config.margin
    )


class HeldOutMeasurement:
    """What the chief measures and keeps: the untrained encoder's held-out retrieval (measured now,
    before training changes the encoder both models share), then every epoch's, a `.keras`
    checkpoint per epoch and the best epoch (`BestEpoch`, which survives a resume)."""

    def __init__(self, config, split, encoder):
        self.checkpoint_dir = os.path.join(config.output_dir, "checkpoints")
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        self.retrieval = RetrievalEvaluation(
            split.test_texts, split.test_labels, split.train_texts, split.train_labels, ks=(1, 5), verbose=1,
            baseline=SentenceEmbedder.from_encoder(encoder, pooling=config.pooling),
        )
        self.baseline = {name.removeprefix("val_"): value for name, value in self.retrieval.baseline_metrics.items()}
        _print_metrics("Untrained encoder (its pooling + L2, no trained layer)", self.baseline)
        self.epochs = BestEpoch(
            "val_hit@1", tie_breakers=("val_recall@5",), keep=("loss",), path=os.path.join(self.checkpoint_dir, "epochs.json")
        )

    def callbacks(self, resuming):
        return [
            self.retrieval,
            self.epochs,
            keras.callbacks.CSVLogger(os.path.join(self.checkpoint_dir, "epochs.csv"), append=resuming),
            keras.callbacks.ModelCheckpoint(os.path.join(self.checkpoint_dir, CHECKPOINT_NAME)),
        ]

    def checkpoint(self, epoch):
        return os.path.join(self.checkpoint_dir, CHECKPOINT_NAME.format(epoch=epoch))


def fit_resumably(config, model, batches, held_out, task=None):
    """`model.fit` backed up every `config.backup_steps` steps: a rerun on the same output
    directory resumes exactly (the batches follow the restored optimizer). Returns (history,
    seconds); a diverged training is a `FloatingPointError`."""
    backup_dir = os.path.join(config.output_dir, "backup")
    resuming = os.path.isdir(backup_dir) and bool(os.listdir(backup_dir))  # BackupAndRestore removes it when done
    callbacks = [keras.callbacks.TerminateOnNaN()]
    if held_out is not None:
        if resuming:
            print(f"Resuming the interrupted training from its backup in {os.path.abspath(backup_dir)}")
        callbacks += held_out.callbacks(resuming)
    started = time.perf_counter()
    try:
        with worker_backup_dir(backup_dir, task) as own_backup_dir:
            backup = keras.callbacks.BackupAndRestore(own_backup_dir, save_freq=config.backup_steps)
            history = model.fit(
                batches, epochs=config.epochs, shuffle=False, callbacks=[backup, *callbacks],
                verbose=2 if held_out is not None else 0,
            )
    except UnreadableFileError as error:  # only the backup is read back during fit
        raise UnreadableFileError(
            error.path, error.kind, f"{error.reason}; delete {backup_dir} to start the training afresh"
        ) from error
    if not all(math.isfinite(loss) for loss in history.history["loss"]):
        raise FloatingPointError(
            f"Training diverged (loss {history.history['loss'][-1]}); nothing was exported. "
            "Lower --learning-rate or check the data."
        )
    return history, time.perf_counter() - started


def export_best_epoch(config, split, held_out, history, seconds):
    """Says how the best epoch compares with the untrained encoder, exports it for TF Serving,
    runs the C++ serving check, writes summary.json and returns the summary."""
    best_epoch, best, baseline = held_out.epochs.best_epoch, held_out.epochs.best, held_out.baseline
    _report_best_epoch(config, best_epoch, best, baseline, held_out)
    best_model = load_model(  # outside any strategy: the export holds plain variables
        held_out.checkpoint(best_epoch), safe_mode=not config.encoder_source.is_tfhub_saved_model
    )
    version_dir = export_saved_model(
        best_model,
        os.path.join(config.output_dir, "serving", config.model_name),
        warmup_texts=split.test_texts[:WARMUP_TEXTS],
        compute_dtype=config.precision,
    )
    print(f"Exported epoch {best_epoch} (the best held-out hit@1), computing in {config.precision}.")
    summary = {
        "untrained_encoder": baseline,
        "epochs": {str(epoch): metrics for epoch, metrics in held_out.epochs.epochs.items()},
        "best_epoch": best_epoch,
        "best": best,
        "beat_untrained_encoder": best["hit@1"] > baseline["hit@1"],
        "settings": {
            "output_units": config.output_units, "learning_rate": config.learning_rate, "precision": config.precision,
            "lazy_adam": config.lazy_adam,
        },
        "training_seconds": seconds,
        "final_loss": float(history.history["loss"][-1]),
        "checkpoint_dir": os.path.abspath(held_out.checkpoint_dir),
        "best_checkpoint": os.path.abspath(held_out.checkpoint(best_epoch)),
        "saved_model": os.path.abspath(version_dir),
        "serving_check": _check_serving(version_dir, split.test_texts[:SERVING_CHECK_TEXTS]),
    }
    with atomic_file_path(os.path.join(config.output_dir, "summary.json")) as path, open(path, "w") as f:
        json.dump(summary, f, indent=2)
    _print_serving_help(config.model_name, os.path.abspath(version_dir))
    return summary


def _report_best_epoch(config, best_epoch, best, baseline, held_out):
    _print_metrics(f"Best epoch ({best_epoch} of {config.epochs})", best)
    if best["hit@1"] > baseline["hit@1"]:
        print(f"  {100 * (best['hit@1'] - baseline['hit@1']):+.1f} points hit@1 over the untrained encoder.")
    else:
        print(
            f"No epoch beat the untrained encoder (hit@1 {baseline['hit@1']:.3f}): the export below is "
            "worse than the encoder as it is. Try a lower --learning-rate, no projection head "
            "(--output-units 0) or more data."
        )
    print(f"Checkpoints: {os.path.abspath(held_out.checkpoint(1))} ... {CHECKPOINT_NAME.format(epoch=config.epochs)}")


def _check_serving(version_dir, texts):
    """Runs the C++ serving check and prints its report; skipped without a compiler."""
    try:
        report = check_serving(version_dir, texts)
    except ServingCheckBuildError as error:  # no C++ compiler here
        print(f"Serving check skipped: {error}")
        return None
    print(report.summary())
    return {
        "passed": True,
        "load_seconds": report.load_seconds,
        "warmup_records": report.warmup_records,
        "latency_seconds_median": float(np.median(report.latencies_seconds)),
    }


def _print_metrics(title, metrics):
    print(
        f"{title}: held-out hit@1 {metrics['hit@1']:.3f}, recall@5 {metrics['recall@5']:.3f}"
    )


def _print_serving_help(model_name, version_dir):
    base_path = os.path.dirname(version_dir)
    print(
        f"""
SavedModel for TensorFlow Serving: {base_path}/<version>/
Serve it:
  docker run -p 8501:8501 -v {base_path}:/models/{model_name} \\
      -e MODEL_NAME={model_name} tensorflow/serving:2.21.0
Check it with TF Serving's C++ loader (no Docker needed):
  keras-siamese check-serving {version_dir}
Query it:
  curl -d '{{"instances": ["a domestic dog", "to move quickly"]}}' \\
      http://localhost:8501/v1/models/{model_name}:predict
In Python (no keras_siamese needed):
  import tensorflow as tf, tensorflow_text
  serve = tf.saved_model.load("{version_dir}").signatures["serving_default"]
  serve(text=tf.constant(["a domestic dog"]))["embedding"]"""
    )
