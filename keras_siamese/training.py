"""The main job: train a Siamese ALBERT on labelled texts, evaluate, checkpoint, export."""

import dataclasses
import json
import math
import os
import time

import keras
import numpy as np

from keras_siamese.artifacts import UnreadableFileError
from keras_siamese.data import ResumeSampling, class_balanced_batches, train_test_split_by_label
from keras_siamese.evaluation import retrieval_metrics
from keras_siamese.export import ServingCheckError, check_serving, export_saved_model
from keras_siamese.layers.pooling import POOLING_MODES
from keras_siamese.losses.distances import check_margin
from keras_siamese.models import TripletSemiHard
from keras_siamese.settings import check_fraction, check_integers, check_positive_number, setting
from keras_siamese.sources import CorpusSource, EncoderSource

WARMUP_TEXTS = 8  # held-out texts in the warmup records (batches of 1 and 8)
SERVING_CHECK_TEXTS = 64


@dataclasses.dataclass
class TrainingConfig:
    """Settings of `train`; the defaults finish in minutes on a 2-core CPU.

    The defaults train a small ALBERT from scratch on the WordNet glosses that
    ship with the package, the 45 lexicographer files as labels. They differ
    from the study's pretrained recipe (pooled output, margin 1.0) where a
    randomly initialised encoder needs it: mean pooling and margin 0.5 train
    steadily from scratch, where the random tanh pooler and margin 1.0 barely
    move held-out retrieval in the same steps, and learning rates of 2e-3
    and above collapse the embeddings. A pretrained encoder (`encoder_source`)
    wants a learning rate near 1e-4 or below.

    Example:
    >>> config = TrainingConfig(epochs=1, corpus=CorpusSource("news.jsonl", label_field="topic"))
    >>> config.check()
    """

    corpus: CorpusSource = setting(CorpusSource(), "data")
    encoder_source: EncoderSource = setting(EncoderSource(sequence_length=48), "encoder")
    output_dir: str = setting("runs/wordnet", "checkpoints, summary.json and serving/ go here")
    model_name: str = setting("wordnet", "the TF Serving model name: the export goes to OUTPUT_DIR/serving/NAME/<version>")
    test_fraction: float = setting(0.1, "fraction of each class held out to measure retrieval before and after")
    pooling: str = setting("mean", "how token states become one vector per text", POOLING_MODES)
    output_units: int = setting(64, "embedding size (Dense(units, relu) -> Dense(units) -> L2 normalise)")
    margin: float = setting(0.5, "triplet margin of the semi-hard loss")
    classes_per_batch: int = setting(16, "classes in each training batch (P)")
    samples_per_class: int = setting(4, "texts of each class in a batch (K)")
    learning_rate: float = setting(1e-3, "Adam's learning rate (1e-3 suits the from-scratch ALBERT)")
    epochs: int = setting(4, "training epochs; a .keras checkpoint is kept after each")
    steps_per_epoch: int = setting(250, "batches per epoch")
    backup_steps: int = setting(50, "steps between the backups in OUTPUT_DIR/backup that a rerun resumes from")
    seed: int = setting(0, "seed of the split, the batches and the initial weights")

    def check(self):
        """Raises `ValueError` for settings that cannot run."""
        self.encoder_source.check()
        check_integers(self, ("output_units", "epochs", "steps_per_epoch", "backup_steps"))
        check_integers(self, ("classes_per_batch", "samples_per_class"), minimum=2)
        check_integers(self, ("seed",), minimum=0)
        check_fraction(self, "test_fraction")
        check_positive_number(self, "learning_rate")
        check_margin(self.margin)
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {self.pooling!r}.")
        if not self.model_name or os.sep in self.model_name:
            raise ValueError(f"model_name must be a non-empty name without {os.sep!r}, got {self.model_name!r}.")


def train(config=None, texts=None, labels=None):
    """Runs the main job and returns a summary dict.

    Trains `TripletSemiHard` with class-balanced batches, prints held-out
    retrieval quality (hit@1, recall@5 of held-out texts against training
    texts, by label) before and after training, keeps a `.keras` checkpoint
    per epoch, exports the SavedModel for TF Serving (with warmup records
    from held-out texts), loads it with TF Serving's C++ loader when a C++
    compiler is there (`keras_siamese.export.check_serving`) and prints how to
    serve and query it. Pass `texts` and `labels` to train on your own data instead
    of the configured corpus. Training backs itself up every `backup_steps` steps in
    `output_dir/backup`; rerun on the same `output_dir` after a crash or a kill
    and it resumes where the last backup left it, ending with the weights of an
    uninterrupted run.

    Example:
    >>> summary = train(TrainingConfig(epochs=1, steps_per_epoch=20))  # doctest: +SKIP
    """
    config = config or TrainingConfig()
    config.check()
    keras.utils.set_random_seed(config.seed)
    if texts is None:
        texts, labels, _ = config.corpus.load()
    train_texts, train_labels, test_texts, test_labels = train_test_split_by_label(
        texts, labels, test_fraction=config.test_fraction, seed=config.seed
    )
    print(
        f"Corpus {config.corpus.data}: {len(train_texts)} training and {len(test_texts)} held-out "
        f"texts, {len(set(np.asarray(train_labels).tolist()))} classes."
    )
    model = build_model(config, train_texts)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))

    batches = class_balanced_batches(  # checks the batch shape against the corpus first
        train_texts,
        train_labels,
        classes_per_batch=config.classes_per_batch,
        samples_per_class=config.samples_per_class,
        seed=config.seed,
        batches_per_epoch=config.steps_per_epoch,
    )

    def evaluate():
        corpus = model.predict(np.array(train_texts, dtype=object), batch_size=256, verbose=0)
        queries = model.predict(np.array(test_texts, dtype=object), batch_size=256, verbose=0)
        return retrieval_metrics(queries, test_labels, corpus, train_labels, ks=(1, 5))

    before = evaluate()
    _print_metrics("Before training", before)

    checkpoint_dir = os.path.join(config.output_dir, "checkpoints")
    backup_dir = os.path.join(config.output_dir, "backup")
    os.makedirs(checkpoint_dir, exist_ok=True)
    if os.path.isdir(backup_dir) and os.listdir(backup_dir):  # BackupAndRestore removes it when done
        print(f"Resuming the interrupted training from its backup in {os.path.abspath(backup_dir)}")
    started = time.perf_counter()
    try:
        history = model.fit(
            batches,
            epochs=config.epochs,
            shuffle=False,  # the batches are shuffled by their sampler
            callbacks=[
                # A rerun on the same output_dir continues an interrupted training exactly.
                keras.callbacks.BackupAndRestore(backup_dir, save_freq=config.backup_steps),
                ResumeSampling(batches),
                keras.callbacks.TerminateOnNaN(),
                keras.callbacks.ModelCheckpoint(os.path.join(checkpoint_dir, "epoch{epoch:02d}.keras")),
            ],
        )
    except UnreadableFileError as error:  # only the backup is read back during fit
        raise UnreadableFileError(
            error.path, error.kind, f"{error.reason}; delete {backup_dir} to start the training afresh"
        ) from error
    training_seconds = time.perf_counter() - started
    if not all(math.isfinite(loss) for loss in history.history["loss"]):
        raise FloatingPointError(
            f"Training diverged (loss {history.history['loss'][-1]}); nothing was exported. "
            "Lower --learning-rate or check the data."
        )

    after = evaluate()
    _print_metrics("After training", after)
    print(f"Checkpoints: {os.path.abspath(checkpoint_dir)}/epoch01.keras ... epoch{config.epochs:02d}.keras")

    version_dir = export_saved_model(
        model,
        os.path.join(config.output_dir, "serving", config.model_name),
        warmup_texts=test_texts[:WARMUP_TEXTS],
    )
    summary = {
        "before": before,
        "after": after,
        "training_seconds": training_seconds,
        "final_loss": float(history.history["loss"][-1]),
        "checkpoint_dir": os.path.abspath(checkpoint_dir),
        "saved_model": os.path.abspath(version_dir),
        "serving_check": _check_serving(version_dir, test_texts[:SERVING_CHECK_TEXTS]),
    }
    with open(os.path.join(config.output_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    _print_serving_help(config.model_name, os.path.abspath(version_dir))
    return summary


def build_model(config, texts):
    """The main job's untrained model: `config`'s encoder (a random ALBERT has its vocabulary
    trained on `texts`), pooling, projection and L2 normalisation.

    Example:
    >>> model = build_model(TrainingConfig(), texts)  # doctest: +SKIP
    >>> model.predict(["a small dog"]).shape  # doctest: +SKIP
    (1, 64)
    """
    return TripletSemiHard.from_encoder(
        config.encoder_source.build(texts),
        pooling=config.pooling,
        hidden_units=(config.output_units,),
        output_units=config.output_units,
        margin=config.margin,
    )


def _check_serving(version_dir, texts):
    """Runs the C++ serving check and prints its report; skipped without a compiler."""
    try:
        report = check_serving(version_dir, texts)
    except ServingCheckError as error:
        if error.stage != "build":
            raise
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
