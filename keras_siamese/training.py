"""The main job: fine-tune (or train from scratch) an encoder on labelled texts, pairs, rows with
negatives or scored pairs with the loss that suits them, measured against the untrained encoder every
epoch; checkpoint, export the best epoch."""

import dataclasses
import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from keras_siamese import inference
from keras_siamese.artifacts import UnreadableFileError
from keras_siamese.atomic import atomic_file_path
from keras_siamese.cluster import cluster_task, connect, worker_backup_dir
from keras_siamese.data import (
    LABELLED_TEXTS,
    PAIRS,
    ROWS_WITH_NEGATIVES,
    SCORED_PAIRS,
    TextRows,
    mine_row_negatives,
    train_test_split_by_label,
)
from keras_siamese.evaluation import (
    BestEpoch,
    InformationRetrievalEvaluation,
    PairSimilarityEvaluation,
    RetrievalEvaluation,
    best_f1_threshold,
    pair_cosines,
)
from keras_siamese.export import ServingCheckBuildError, check_serving, export_saved_model, read_metadata
from keras_siamese.layers.pooling import POOLING_MODES
from keras_siamese.losses.distances import check_margin
from keras_siamese.losses.matryoshka import check_matryoshka_dims
from keras_siamese.models import SentenceEmbedder, TripletSemiHard, load_model
from keras_siamese.models.sentence_embedder import check_prompts
from keras_siamese.models.triplet_semihard import MARGIN
from keras_siamese.objectives import (
    LOSSES,
    choose_loss,
    compile_for,
    global_batch_size,
    training_batches,
    training_model,
)
from keras_siamese.optimizers import check_fine_tuning_settings, fine_tuning_optimizer
from keras_siamese.precision import (
    MATMUL_PRECISIONS,
    PRECISIONS,
    SERVING_PRECISIONS,
    check_matmul_precision,
    check_precision,
    set_matmul_precision,
    training_precision,
)
from keras_siamese.settings import check_fraction, check_integers, check_positive_number, setting
from keras_siamese.sources import FROM_CORPUS, CorpusSource, EncoderSource

WARMUP_TEXTS = 8  # held-out texts in the warmup records (batches of 1 and 8)
CALIBRATION_TEXTS = 512  # training texts an int8 export is calibrated on
SERVING_CHECK_TEXTS = 64
CHECKPOINT_NAME = "epoch{epoch:02d}.keras"  # one per epoch, in OUTPUT_DIR/checkpoints


PRETRAINED_LEARNING_RATE = 1e-4
FROM_SCRATCH_LEARNING_RATE = 1e-3
FROM_SCRATCH_OUTPUT_UNITS = 64


@dataclasses.dataclass
class TrainingConfig:
    """Settings of `train`; the defaults finish in minutes on a 2-core CPU.

    The defaults train a small ALBERT from scratch on the WordNet glosses that
    ship with the package, the 45 lexicographer files as labels. `loss` picks
    the loss for the data's shape (`keras_siamese.objectives`): semi-hard
    triplets for labelled texts, multiple-negatives ranking for pairs and rows
    with negatives, CoSENT for scored pairs. Settings left
    as None are chosen by the encoder's kind (benchmarks/README.md, fine-tuning
    quality, has the measurements):
    - a pretrained encoder (`encoder_source`) keeps its geometry: no
      projection head (tokens -> encoder -> pooling -> L2), AdamW at 1e-4;
    - the from-scratch ALBERT gets the study's Dense(64, relu) -> Dense(64)
      head and 1e-3.
    Both warm the learning rate up linearly over `warmup_fraction` of the
    steps, then decay it (cosine) to 0.

    Example:
    >>> config = TrainingConfig(epochs=1, corpus=CorpusSource("news.jsonl", label_column="topic"))
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
    loss: str = setting(
        "auto",
        "the loss; the data's shape must suit it (auto: semihard for labelled texts, mnrl for pairs and rows with "
        "negatives, cosent for scored pairs)",
        LOSSES,
    )
    margin: float = setting(
        MARGIN, "margin of the triplet and contrastive losses (embeddings are unit vectors: distances in [0, 2])"
    )
    classes_per_batch: int = setting(16, "classes in each training batch of the triplet losses (P)")
    samples_per_class: int = setting(4, "texts of each class in a batch of the triplet losses (K)")
    batch_size: int = setting(32, "rows in each training batch of the other losses (pairs, or texts per label for mnrl)")
    matryoshka_dims: tuple = setting(
        (), "also train these prefix sizes of the embedding (MatryoshkaLoss), e.g. 384,128,64",
        type=int,
    )
    prompts: tuple = setting(
        (), "prompts as name=prefix, e.g. 'query=query: ,document=passage: ': the model keeps them (encode(..., "
        "prompt_name=...), a SavedModel signature each); on pairs and rows with negatives the anchors train with "
        "the query prompt and the other columns with the document prompt",
        type=str,
    )
    mine_negatives: int = setting(
        0, "give each pair this many hard negatives, mined with the untrained encoder among the other rows' "
        "positives (mnrl on pairs; 0: none)",
    )
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
    export_precision: str = setting(
        None,
        "what the exported SavedModel computes in (default: --precision); int8 runs the encoder's matrix "
        f"products through oneDNN, calibrated on {CALIBRATION_TEXTS} training texts, and needs TF Serving of this "
        "TensorFlow version built with oneDNN",
        SERVING_PRECISIONS, type=str,
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
        """A copy with every None setting chosen for the encoder's kind (and the Matryoshka dims sorted)."""
        return dataclasses.replace(
            self,
            output_units=(0 if self.pretrained else FROM_SCRATCH_OUTPUT_UNITS)
            if self.output_units is None else self.output_units,
            learning_rate=(PRETRAINED_LEARNING_RATE if self.pretrained else FROM_SCRATCH_LEARNING_RATE)
            if self.learning_rate is None else self.learning_rate,
            matryoshka_dims=tuple(sorted(self.matryoshka_dims)),
        )

    def check(self):
        """Raises `ValueError` for settings that cannot run."""
        self.encoder_source.check()
        check_integers(self, ("epochs", "steps_per_epoch", "backup_steps"))
        check_integers(self, ("classes_per_batch", "samples_per_class", "batch_size"), minimum=2)
        check_integers(self, ("seed", "mine_negatives"), minimum=0)
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}.")
        if self.matryoshka_dims:
            check_matryoshka_dims(self.matryoshka_dims)
        check_prompts(self.prompt_texts)
        if self.output_units is not None:
            check_integers(self, ("output_units",), minimum=0)
        check_fraction(self, "test_fraction")
        if self.learning_rate is not None:
            check_positive_number(self, "learning_rate")
        check_fine_tuning_settings(1e-3, 1, self.warmup_fraction, self.weight_decay)
        check_margin(self.margin)
        check_precision(self.precision)
        if self.export_precision is not None:
            check_precision(self.export_precision, "export_precision", SERVING_PRECISIONS)
        if self.matmul_precision is not None:
            check_matmul_precision(self.matmul_precision, "matmul_precision")
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {self.pooling!r}.")
        if not self.model_name or os.sep in self.model_name:
            raise ValueError(f"model_name must be a non-empty name without {os.sep!r}, got {self.model_name!r}.")

    @property
    def prompt_texts(self):
        """`prompts` as a dict of name -> prefix (None for none); a `ValueError` for an item without '='."""
        if not self.prompts:
            return None
        malformed = [item for item in self.prompts if "=" not in item]
        if malformed:
            raise ValueError(f"prompts are name=prefix items such as 'query=query: ', got {malformed[0]!r}.")
        return dict(item.split("=", 1) for item in self.prompts)

    def check_data(self, rows, workers=None):
        """The loss these settings train `rows` with (`keras_siamese.objectives.choose_loss`), checked
        against the data, and the global batch against `workers` (default: `TF_CONFIG`'s cluster, if any);
        a `ValueError` for anything that cannot train."""
        loss = choose_loss(self.loss, rows)
        if self.mine_negatives and rows.shape != PAIRS:
            raise ValueError(f"mine_negatives gives pairs (anchor, positive) negatives; {rows.source} holds {rows.shape}.")
        task = cluster_task()
        workers = workers or (task.num_workers if task is not None else 1)
        if global_batch_size(loss, self) % workers:
            raise ValueError(
                f"The global batch of {global_batch_size(loss, self)} rows (--loss {loss}) does not split evenly "
                f"over {workers} workers."
            )
        return loss


def train(config=None, texts=None, labels=None, rows=None):
    """Runs the main job and returns a summary dict.

    Trains on the configured data (or `texts` and `labels`, or `rows`, a
    `keras_siamese.data.TextRows` of pairs, rows with negatives or scored
    pairs) with the loss `config.loss` picks for its shape
    (`keras_siamese.objectives`), and measures a held-out share after every
    epoch beside the untrained encoder's own embedding (its pooling + L2, no
    trained layer: the baseline to beat):
    - labelled texts: hit@1 and hit@5 of held-out texts against the training
      texts, by label;
    - pairs and rows with negatives: NDCG@10, MRR@10, recall@10 and
      accuracy@1 of each held-out anchor as a query against every positive
      as a document (`information_retrieval_metrics`);
    - scored pairs: Spearman and Pearson correlation of cosine and score;
      for scores 0/1 the best-F1 cosine threshold for duplicates goes into
      the export's metadata.
    It keeps a `.keras` checkpoint of the embedding model per epoch, exports
    the best epoch as a SavedModel for TF Serving (with warmup records from
    held-out texts), says plainly when no epoch beat the untrained encoder,
    loads the export with TF Serving's C++ loader when a C++ compiler is
    there (`keras_siamese.export.check_serving`) and prints how to serve and
    query it. Training backs itself up every `backup_steps` steps in
    `output_dir/backup`; rerun on the same `output_dir` after a crash or a
    kill and it resumes where the last backup left it, ending with the
    weights of an uninterrupted run.

    With a `TF_CONFIG` in the environment this process is one worker of that
    cluster (`MultiWorkerMirroredStrategy`; `keras-siamese train --workers N`
    starts N on this machine): each worker reads its slice of the same global
    batches and the loss sees them whole. Only the chief measures,
    checkpoints, exports and writes the summary; the other workers back up to a
    temporary directory (seeded from the chief's backup, so a rerun resumes on
    every worker: the output directory must be shared) and return
    `{"worker": ..., "final_loss": ...}`.

    Example:
    >>> summary = train(TrainingConfig(epochs=1, steps_per_epoch=20))  # doctest: +SKIP
    >>> summary = train(TrainingConfig(loss="mnrl"), rows=load_rows("faq.jsonl"))  # doctest: +SKIP
    """
    config = prepare(config)
    task = cluster_task()
    strategy = connect() if task is not None else tf.distribute.get_strategy()
    keras.utils.set_random_seed(config.seed)
    rows = rows if rows is not None else TextRows.labelled(texts, labels) if texts is not None else config.corpus.load()
    loss = config.check_data(rows)
    split = with_prompts(split_rows(config, rows, task), config.prompt_texts)
    model, embedder, encoder, batches = build_training(config, loss, split, strategy, task)
    held_out = HeldOutMeasurement(config, split, encoder, embedder) if task is None or task.is_chief else None
    history, seconds = fit_resumably(config, model, batches, held_out, task)
    if held_out is None:
        return {"worker": task.name, "final_loss": float(history.history["loss"][-1])}
    return export_best_epoch(config, loss, split, held_out, history, seconds)


def prepare(config):
    """`config` (default: `TrainingConfig()`) checked, its automatic settings resolved; applies its
    matmul precision, which must precede the first matrix product it governs."""
    config = config or TrainingConfig()
    config.check()
    config = config.resolved()
    if config.matmul_precision is not None:
        set_matmul_precision(config.matmul_precision)
    return config


class TrainingDataError(ValueError):
    """The training rows cannot fill the batches the settings ask for (found once the data is split
    and any negatives mined, before the first step)."""


@dataclasses.dataclass
class RowSplit:
    """The rows `train` trains on and the held-out rows it measures with (labelled texts: int labels)."""

    train: TextRows
    held_out: TextRows

    @property
    def shape(self):
        return self.train.shape


def split_rows(config, rows, task=None):
    """`rows` split for training and measuring; the chief says how big each part is.

    Labelled texts: `config.test_fraction` of each class held out. Pairs and rows with negatives:
    that share of the distinct anchors, with all their rows (a held-out query is never trained on).
    Scored pairs: that share of the rows.
    """
    rng = np.random.default_rng([config.seed, 3])
    if rows.shape == LABELLED_TEXTS:
        texts, ids, _ = rows.labelled_texts()
        train_texts, train_ids, test_texts, test_ids = train_test_split_by_label(
            texts, ids, test_fraction=config.test_fraction, seed=config.seed
        )
        split = RowSplit(*(TextRows.labelled(texts, ids, rows.source, rows.label_column)  # labels: class ids
                           for texts, ids in ((train_texts, train_ids), (test_texts, test_ids))))
        described = f"{len(train_texts)} training and {len(test_texts)} held-out texts, {len(set(train_ids.tolist()))} classes"
    else:
        keys = rows.texts[0] if rows.shape != SCORED_PAIRS else range(len(rows))
        distinct = list(dict.fromkeys(keys))
        held = {distinct[i] for i in rng.permutation(len(distinct))[: max(1, round(config.test_fraction * len(distinct)))]}
        is_held = np.array([key in held for key in keys])
        split = RowSplit(rows.take(np.flatnonzero(~is_held)), rows.take(np.flatnonzero(is_held)))
        described = f"{len(split.train)} training and {len(split.held_out)} held-out {rows.shape}"
    if task is None or task.is_chief:
        print(f"Data {rows.source}: {described}" + (f", {task.num_workers} workers." if task is not None else "."))
    return split


def with_prompts(split, prompts):
    """`split` with the anchors of pairs and rows with negatives prefixed by the `query` prompt and their
    other columns by the `document` prompt (as `encode(..., prompt_name=...)` prefixes them); other data,
    or no such prompts, as it is."""
    prompts = prompts or {}
    if split.shape not in (PAIRS, ROWS_WITH_NEGATIVES) or not ({"query", "document"} & set(prompts)):
        return split

    def prefixed(rows):
        prefixes = [prompts.get("query", "")] + [prompts.get("document", "")] * (len(rows.columns) - 1)
        return dataclasses.replace(rows, texts=tuple([prefix + text for text in column]
                                                     for prefix, column in zip(prefixes, rows.texts)))

    return RowSplit(prefixed(split.train), prefixed(split.held_out))


def build_training(config, loss, split, strategy, task=None):
    """(model `fit` trains, embedding model, encoder, batches): the embedding model and the model
    around it that `loss` trains (`keras_siamese.objectives`), built and compiled under `strategy`;
    the pairs given mined negatives first, if `config.mine_negatives` asks."""
    with strategy.scope(), training_precision(config.precision):
        encoder = config.encoder_source.build([text for column in split.train.texts for text in column])
        embedder = build_model(config, encoder, loss)
    if config.matryoshka_dims:
        check_matryoshka_dims(config.matryoshka_dims, embedder.outputs[0].shape[-1])
    rows = split.train
    try:
        if config.mine_negatives:
            rows = mine_row_negatives(embedder, rows, config.mine_negatives)
            if task is None or task.is_chief:
                print(f"Mined {config.mine_negatives} hard negative(s) for {len(rows)} of {len(split.train)} training pairs.")
        batches = training_batches(loss, rows, config)
    except ValueError as error:  # the data does not fill the batches the settings ask for
        raise TrainingDataError(str(error)) from error
    with strategy.scope(), training_precision(config.precision):
        model = training_model(loss, embedder, rows)
        compile_for(model, loss, config.margin, config.matryoshka_dims, fine_tuning_optimizer(
            config.learning_rate, config.epochs * config.steps_per_epoch, config.warmup_fraction, config.weight_decay,
            lazy=config.lazy_adam,
        ))
    if task is not None:
        batches = model.distributed_batches(lambda context: training_batches(loss, rows, config, context))
    return model, embedder, encoder, batches


def build_model(config, encoder, loss="semihard"):
    """The main job's untrained embedding model: `encoder`, `config`'s pooling, its projection head if
    `config.output_units` (resolved) asks for one, and L2 normalisation; a `TripletSemiHard` for the
    semi-hard loss.

    Example:
    >>> model = build_model(TrainingConfig().resolved(), encoder)  # doctest: +SKIP
    >>> model.predict(["a small dog"]).shape  # doctest: +SKIP
    (1, 64)
    """
    units = config.output_units or None
    head = dict(pooling=config.pooling, output_units=units, hidden_units=(units,) if units else (),
                prompts=config.prompt_texts)
    if loss == "semihard":
        return TripletSemiHard.from_encoder(encoder, margin=config.margin, **head)
    return SentenceEmbedder.from_encoder(encoder, **head)


class HeldOutMeasurement:
    """What the chief measures and keeps: the untrained encoder's held-out quality (measured now,
    before training changes the encoder both models share), then every epoch's, a `.keras`
    checkpoint of the embedding model per epoch and the best epoch (`BestEpoch`, which survives a
    resume). `metrics` names what is shown, the first decides the best epoch, the others break ties."""

    def __init__(self, config, split, encoder, embedder):
        self.checkpoint_dir = os.path.join(config.output_dir, "checkpoints")
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        self.embedder = embedder
        self.evaluation, self.metrics = held_out_evaluation(
            split, SentenceEmbedder.from_encoder(encoder, pooling=config.pooling),
            embed_fn=lambda texts: inference.encode(embedder, list(texts), batch_size=256),
        )
        self.baseline = {
            name.removeprefix("val_"): value for name, value in self.evaluation.baseline_metrics.items()
        }
        _print_metrics("Untrained encoder (its pooling + L2, no trained layer)", self.baseline, self.metrics)
        self.epochs = BestEpoch(
            f"val_{self.metrics[0]}", tie_breakers=tuple(f"val_{name}" for name in self.metrics[1:]), keep=("loss",),
            path=os.path.join(self.checkpoint_dir, "epochs.json"),
        )

    @property
    def monitor(self):
        return self.metrics[0]

    def callbacks(self, resuming):
        return [
            self.evaluation,
            self.epochs,
            keras.callbacks.CSVLogger(os.path.join(self.checkpoint_dir, "epochs.csv"), append=resuming),
            _EmbedderCheckpoint(self.embedder, os.path.join(self.checkpoint_dir, CHECKPOINT_NAME)),
        ]

    def checkpoint(self, epoch):
        return os.path.join(self.checkpoint_dir, CHECKPOINT_NAME.format(epoch=epoch))


def held_out_evaluation(split, baseline, embed_fn):
    """(the callback measuring `split.held_out` each epoch with `embed_fn`, the metric names it shows,
    best first)."""
    held_out, common = split.held_out, dict(verbose=1, baseline=baseline, embed_fn=embed_fn)
    if split.shape == LABELLED_TEXTS:
        evaluation = RetrievalEvaluation(
            held_out.texts[0], held_out.labels, split.train.texts[0], split.train.labels, ks=(1, 5), **common
        )
        return evaluation, ("hit@1", "hit@5")
    if split.shape == SCORED_PAIRS:
        evaluation = PairSimilarityEvaluation(held_out.texts[0], held_out.texts[1], held_out.scores(), **common)
        return evaluation, ("spearman", "pearson")
    queries, documents, relevant = retrieval_task(split)
    evaluation = InformationRetrievalEvaluation(queries, documents, relevant, ks=(1, 10), **common)
    return evaluation, ("ndcg@10", "mrr@10", "recall@10", "accuracy@1")


def retrieval_task(split):
    """(queries, documents, relevant) of held-out pairs: each distinct held-out anchor is a query, every
    distinct positive of all rows a document, a query's relevant documents its positives."""
    documents = list(dict.fromkeys(split.train.texts[1] + split.held_out.texts[1]))
    position = {text: index for index, text in enumerate(documents)}
    relevant = {}
    for anchor, positive in zip(split.held_out.texts[0], split.held_out.texts[1]):
        relevant.setdefault(anchor, set()).add(position[positive])
    return list(relevant), documents, list(relevant.values())


class _EmbedderCheckpoint(keras.callbacks.Callback):
    """Saves the embedding model (what is exported; `fit` may train a pair model around it) after every
    epoch, atomically (`SentenceEmbedder.save`)."""

    def __init__(self, embedder, path):
        super().__init__()
        self.embedder, self.path = embedder, path

    def on_epoch_end(self, epoch, logs=None):
        self.embedder.save(self.path.format(epoch=epoch + 1))


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


def calibration_texts(rows, seed):
    """Up to `CALIBRATION_TEXTS` texts drawn from every text column of the training rows."""
    texts = [text for column in rows.texts for text in column if text.strip()]
    chosen = np.random.default_rng(seed).permutation(len(texts))[:CALIBRATION_TEXTS]
    return [texts[i] for i in chosen]


def export_best_epoch(config, loss, split, held_out, history, seconds):
    """Says how the best epoch compares with the untrained encoder, exports it for TF Serving (with
    the held-out metrics, and a duplicate threshold for pairs scored 0/1, in its metadata), runs the
    C++ serving check, writes summary.json and returns the summary."""
    best_epoch, best, baseline = held_out.epochs.best_epoch, held_out.epochs.best, held_out.baseline
    _report_best_epoch(config, best_epoch, best, baseline, held_out)
    best_model = load_model(  # outside any strategy: the export holds plain variables
        held_out.checkpoint(best_epoch), safe_mode=not config.encoder_source.is_tfhub_saved_model
    )
    facts = {
        "model_name": config.model_name, "loss": loss, "data": f"{split.train.describe()}; {len(split.held_out):,} held out",
        "held_out": {name: best[name] for name in held_out.metrics},
        "untrained_encoder": {name: baseline[name] for name in held_out.metrics},
        "precision": config.precision, "matryoshka_dims": list(config.matryoshka_dims),
    }
    threshold = duplicate_threshold(best_model, split.held_out)
    if threshold is not None:
        facts["duplicate_threshold"] = threshold
    warmup_texts = split.held_out.texts[0][:WARMUP_TEXTS]
    precision = config.export_precision or config.precision
    version_dir = export_saved_model(
        best_model,
        os.path.join(config.output_dir, "serving", config.model_name),
        warmup_texts=warmup_texts,
        compute_dtype=precision,
        calibration_texts=calibration_texts(split.train, config.seed) if precision == "int8" else None,
        metadata=facts,
    )
    print(f"Exported epoch {best_epoch} (the best held-out {held_out.monitor}), computing in {precision}.")
    if precision == "int8":
        int8 = read_metadata(version_dir)["int8"]
        print(f"int8: {int8['int8_matmuls']} matrix products in int8, {len(int8['float32_matmuls'])} kept in float32; "
              f"held-out calibration texts within cosine {int8['min_cosine_to_float32']:.4f} of float32.")
    if threshold is not None:
        print(f"Duplicates: cosine >= {threshold['threshold']:.4f} (held-out F1 {threshold['f1']:.3f}), in the export's metadata.")
    summary = {
        "loss": loss,
        "untrained_encoder": baseline,
        "epochs": {str(epoch): metrics for epoch, metrics in held_out.epochs.epochs.items()},
        "best_epoch": best_epoch,
        "best": best,
        "beat_untrained_encoder": best[held_out.monitor] > baseline[held_out.monitor],
        "duplicate_threshold": threshold,
        "settings": {
            "output_units": config.output_units, "learning_rate": config.learning_rate, "precision": config.precision,
            "lazy_adam": config.lazy_adam, "matryoshka_dims": list(config.matryoshka_dims),
            "mine_negatives": config.mine_negatives, "prompts": config.prompt_texts,
        },
        "training_seconds": seconds,
        "final_loss": float(history.history["loss"][-1]),
        "checkpoint_dir": os.path.abspath(held_out.checkpoint_dir),
        "best_checkpoint": os.path.abspath(held_out.checkpoint(best_epoch)),
        "saved_model": os.path.abspath(version_dir),
        "serving_check": _check_serving(version_dir, split.held_out.texts[0][:SERVING_CHECK_TEXTS]),
    }
    with atomic_file_path(os.path.join(config.output_dir, "summary.json")) as path, open(path, "w") as f:
        json.dump(summary, f, indent=2)
    _print_serving_help(config.model_name, os.path.abspath(version_dir))
    return summary


def duplicate_threshold(model, held_out):
    """For pairs scored 0/1 (duplicate or not): the cosine threshold with the best held-out F1
    (`keras_siamese.evaluation.best_f1_threshold`) as a dict; None for other data."""
    if held_out.shape != SCORED_PAIRS:
        return None
    scores = held_out.scores()
    if not np.all((scores == 0.0) | (scores == 1.0)) or not scores.any():
        return None
    cosines = pair_cosines(model.encode(held_out.texts[0]), model.encode(held_out.texts[1]))
    return {name: float(value) for name, value in dataclasses.asdict(best_f1_threshold(cosines, scores)).items()}


def _report_best_epoch(config, best_epoch, best, baseline, held_out):
    monitor = held_out.monitor
    _print_metrics(f"Best epoch ({best_epoch} of {config.epochs})", best, held_out.metrics)
    if best[monitor] > baseline[monitor]:
        print(f"  {100 * (best[monitor] - baseline[monitor]):+.1f} points {monitor} over the untrained encoder.")
    else:
        print(
            f"No epoch beat the untrained encoder ({monitor} {baseline[monitor]:.3f}): the export below is "
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


def _print_metrics(title, metrics, names):
    print(f"{title}: held-out " + ", ".join(f"{name} {metrics[name]:.3f}" for name in names))


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
