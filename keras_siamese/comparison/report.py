"""Files of a comparison: results table (markdown, JSON), saved predictions, TensorBoard projector.

Layout under the output directory:

    results.json          config, class names, every metric of every variant
    results.md            the table people read
    predictions/<variant>.npz
                          test_labels, test_probabilities (classifier head),
                          knn_predictions, knn_scores, train_labels,
                          train_embeddings, test_embeddings: enough to
                          recompute every number in results.json
    projector/            TensorBoard projector: a checkpoint with one
                          embedding variable per variant, metadata.tsv
                          (text, label), projector_config.pbtxt
    map_<variant>.png, curves.png   see `keras_siamese.comparison.plots`
"""

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from keras_siamese.atomic import atomic_file_path
from keras_siamese.evaluation import knn_classify, knn_scores

# Columns of the markdown table: (section, metric, heading).
TABLE_COLUMNS = (
    ("classifier", "accuracy", "head acc"),
    ("classifier", "weighted_f1", "head wF1"),
    ("classifier", "micro_auc", "head µAUC"),
    ("knn", "accuracy", "kNN acc"),
    ("knn", "weighted_f1", "kNN wF1"),
    ("retrieval", "hit@1", "hit@1"),
    ("retrieval", "hit@5", "hit@5"),
    ("retrieval", "mrr", "MRR"),
    ("retrieval", "map@r", "MAP@R"),
    ("training", "examples_per_second", "train ex/s"),
)


def write_comparison(comparison, output_dir=None, projector_points=10000):
    """Writes `results.json`, `results.md`, `predictions/` and `projector/`; returns their paths.

    Example:
    >>> paths = write_comparison(compare(encoder, texts, labels), "runs/compare")  # doctest: +SKIP
    >>> sorted(paths)  # doctest: +SKIP
    ['predictions', 'projector', 'results.json', 'results.md']
    """
    output_dir = output_dir or comparison.config.output_dir
    os.makedirs(output_dir, exist_ok=True)
    paths = {
        "results.json": os.path.join(output_dir, "results.json"),
        "results.md": os.path.join(output_dir, "results.md"),
        "predictions": os.path.join(output_dir, "predictions"),
        "projector": os.path.join(output_dir, "projector"),
    }
    results = {
        "config": _jsonable(dataclasses.asdict(comparison.config)),
        "class_names": comparison.class_names,
        "num_train": int(len(comparison.train_labels)),
        "num_test": int(len(comparison.test_labels)),
        "metrics": comparison.metrics,
        "history": {name: run.history for name, run in comparison.runs.items()},
    }
    with atomic_file_path(paths["results.json"]) as partial:
        with open(partial, "w") as file:
            json.dump(results, file, indent=2)
    with atomic_file_path(paths["results.md"]) as partial:
        with open(partial, "w") as file:
            file.write(markdown_table(comparison.metrics, len(comparison.train_labels), len(comparison.test_labels)))
    write_predictions(comparison, paths["predictions"])
    write_projector(comparison, paths["projector"], projector_points)
    return paths


def markdown_table(metrics, num_train=None, num_test=None):
    """One row per variant, the columns of `TABLE_COLUMNS`; `-` where a metric does not apply.

    Example:
    >>> print(markdown_table({"frozen": {"classifier": {"accuracy": 0.5}}}).splitlines()[2][:24])
    | frozen | 0.500 | - | -
    """
    lines = []
    if num_train is not None:
        lines.append(f"Held-out evaluation: {num_test} test texts; kNN and retrieval search the {num_train} training texts.\n")
    lines.append("| variant | " + " | ".join(heading for _, _, heading in TABLE_COLUMNS) + " |")
    lines.append("|---|" + "---:|" * len(TABLE_COLUMNS))
    for name, sections in metrics.items():
        cells = []
        for section, key, _ in TABLE_COLUMNS:
            value = sections.get(section, {}).get(key)
            cells.append("-" if value is None else (f"{value:.1f}" if key == "examples_per_second" else f"{value:.3f}"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "frozen" in metrics:
        lines.append(
            "\n`frozen`'s kNN and retrieval columns are the untrained encoder's own embedding (its pooling"
            " + L2, no trained layer): the baseline the trained variants must beat."
        )
    return "\n".join(lines) + "\n"


def write_predictions(comparison, directory):
    """One `<variant>.npz` per variant with the arrays behind its metrics."""
    os.makedirs(directory, exist_ok=True)
    k = comparison.config.knn_k
    num_classes = len(comparison.class_names)
    for name, run in comparison.runs.items():
        path = os.path.join(directory, f"{name}.npz")
        with atomic_file_path(path) as partial:
            with open(partial, "wb") as file:
                np.savez_compressed(
                    file,
                    train_labels=comparison.train_labels,
                    test_labels=comparison.test_labels,
                    test_probabilities=run.test_probabilities.astype(np.float32),
                    knn_predictions=knn_classify(run.test_embeddings, run.train_embeddings, comparison.train_labels, k=k),
                    knn_scores=knn_scores(
                        run.test_embeddings, run.train_embeddings, comparison.train_labels, num_classes, k=k
                    ),
                    train_embeddings=run.train_embeddings.astype(np.float32),
                    test_embeddings=run.test_embeddings.astype(np.float32),
                )


def write_projector(comparison, directory, max_points=10000):
    """TensorBoard projector files for the test embeddings of every variant.

    Open with `tensorboard --logdir <directory>` and the Projector tab; each
    variant is one tensor, the points labelled by text and class.
    """
    os.makedirs(directory, exist_ok=True)
    count = min(max_points, len(comparison.test_texts))
    chosen = np.random.default_rng(comparison.config.seed).permutation(len(comparison.test_texts))[:count]
    chosen.sort()
    variables = {
        name: tf.Variable(run.test_embeddings[chosen].astype(np.float32), name=name)
        for name, run in comparison.runs.items()
    }
    checkpoint_prefix = tf.train.Checkpoint(**variables).write(os.path.join(directory, "embeddings.ckpt"))
    with open(os.path.join(directory, "metadata.tsv"), "w", encoding="utf-8") as file:
        file.write("text\tlabel\n")
        for i in chosen:
            label = comparison.class_names[comparison.test_labels[i]]
            file.write(f"{_tsv_cell(comparison.test_texts[i])}\t{_tsv_cell(label)}\n")
    entries = "".join(
        "embeddings {\n"
        f'  tensor_name: "{name}/.ATTRIBUTES/VARIABLE_VALUE"\n'
        '  metadata_path: "metadata.tsv"\n'
        "}\n"
        for name in variables
    )
    with open(os.path.join(directory, "projector_config.pbtxt"), "w") as file:
        file.write(f'model_checkpoint_path: "{os.path.basename(checkpoint_prefix)}"\n' + entries)


def _tsv_cell(value):
    return " ".join(str(value).split())


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value
