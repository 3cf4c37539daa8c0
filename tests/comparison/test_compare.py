"""The study's comparison end to end on a tiny corpus and encoder: files, numbers, CLI, bad input.

Every number in results.json is recomputed here from the saved predictions with
plain-Python loops written from the definitions (cosine ranking, k-NN votes, F1,
Mann-Whitney AUC; retrieval by tests/evaluation's oracle), not with the package's
metric functions.
"""

import csv
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_siamese.cli import main
from keras_siamese.comparison import VARIANTS, ComparisonConfig, compare, run_comparison
from tests.evaluation.oracles import oracle_metrics

TINY = dict(
    pooling="mean",
    epochs=2,
    steps_per_epoch=2,
    classes_per_batch=4,
    samples_per_class=2,
    hidden_units=(),  # no ReLU layer: a random tiny one maps most texts onto a few rays
    output_units=16,
    head_units=8,
    head_epochs=2,
    knn_k=3,
    monitor_size=12,
    eval_batch_size=32,
    jit_compile=False,
)
CLI_TINY = [
    "--encoder", "albert-from-corpus", "--vocabulary-size", "300", "--num-layers", "1",
    "--hidden-dim", "16", "--sequence-length", "24", "--epochs", "1", "--steps-per-epoch", "2",
    "--classes-per-batch", "4", "--samples-per-class", "2", "--hidden-units", "8",
    "--output-units", "8", "--head-units", "8", "--head-epochs", "1", "--knn-k", "3",
    "--monitor-size", "0", "--no-jit-compile",
]


@pytest.fixture(scope="module")
def corpus(glosses):
    """120 glosses, 20 from each of 6 classes, and names for all the bundled classes."""
    texts, labels = glosses
    keep = np.concatenate([np.flatnonzero(labels == label)[:20] for label in np.unique(labels)[:6]])
    names = [f"class_{value}" for value in range(int(labels.max()) + 1)]
    return [texts[i] for i in keep], labels[keep], names


@pytest.fixture(scope="module")
def finished(corpus, tiny_encoder_factory, tmp_path_factory):
    """One full `run_comparison` (all three variants, figures on) and the encoder it was given."""
    texts, labels, names = corpus
    encoder = tiny_encoder_factory()
    encoder(tf.constant(["build the weights"]))
    weights_before = [weight.copy() for weight in encoder.get_weights()]
    output_dir = tmp_path_factory.mktemp("compare")
    config = ComparisonConfig(output_dir=str(output_dir), **TINY)
    comparison, paths = run_comparison(encoder, texts, labels, config, class_names=names, figures=True)
    return comparison, output_dir, encoder, weights_before


# --- plain-Python oracles ---------------------------------------------------------------


def knn_vote(query, corpus, labels, k):
    """Predicted class (ties: the class of the best-ranked tied neighbour) and vote counts.

    Neighbours: the `k` highest cosine similarities, equal ones in corpus order.
    """
    def unit(vector):
        norm = math.sqrt(sum(x * x for x in vector))
        return [x / norm for x in vector] if norm else list(vector)

    query = unit(query)
    scores = [sum(a * b for a, b in zip(query, unit(item))) for item in corpus]
    neighbours = sorted(range(len(corpus)), key=lambda j: (-scores[j], j))[:k]
    votes = {}
    for j in neighbours:
        votes[labels[j]] = votes.get(labels[j], 0) + 1
    best = max(votes.values())
    winner = next(labels[j] for j in neighbours if votes[labels[j]] == best)
    return winner, votes


def f1_scores(truth, predicted):
    report = {"accuracy": sum(t == p for t, p in zip(truth, predicted)) / len(truth)}
    classes = sorted(set(truth) | set(predicted))
    f1, support = [], []
    for c in classes:
        tp = sum(t == c and p == c for t, p in zip(truth, predicted))
        fp = sum(t != c and p == c for t, p in zip(truth, predicted))
        fn = sum(t == c and p != c for t, p in zip(truth, predicted))
        f1.append(2 * tp / (2 * tp + fp + fn))
        support.append(sum(t == c for t in truth))
    report["macro_f1"] = sum(f1) / len(f1)
    report["weighted_f1"] = sum(f * s for f, s in zip(f1, support)) / sum(support)
    return report


def auc(positive, scores):
    """P(random positive scores above random negative), ties one half: every pair counted."""
    pos = [s for p, s in zip(positive, scores) if p]
    neg = [s for p, s in zip(positive, scores) if not p]
    wins = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def auc_scores(truth, score_rows, num_classes):
    cells = [(t == c, row[c]) for t, row in zip(truth, score_rows) for c in range(num_classes)]
    per_class = [
        auc([t == c for t in truth], [row[c] for row in score_rows])
        for c in range(num_classes)
        if 0 < sum(t == c for t in truth) < len(truth)
    ]
    return {
        "micro_auc": auc([cell[0] for cell in cells], [cell[1] for cell in cells]),
        "macro_auc": sum(per_class) / len(per_class),
    }


def assert_close(actual, expected):
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, abs=1e-6), name


# --- tests -------------------------------------------------------------------------------


@pytest.mark.slow
def test_writes_every_file(finished):
    _, output_dir, _, _ = finished
    expected = ["results.json", "results.md", "curves.png", "projector/metadata.tsv",
                "projector/projector_config.pbtxt", "projector/embeddings.ckpt.index"]
    expected += [f"predictions/{name}.npz" for name in VARIANTS] + [f"map_{name}.png" for name in VARIANTS]
    for relative in expected:
        path = output_dir / relative
        assert path.is_file() and path.stat().st_size > 0, relative
        if relative.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_json_numbers_equal_a_recomputation_from_the_saved_predictions(finished):
    comparison, output_dir, _, _ = finished
    results = json.loads((output_dir / "results.json").read_text())
    num_classes = len(comparison.class_names)
    assert results["class_names"] == comparison.class_names == [f"class_{value}" for value in range(num_classes)]
    assert list(results["metrics"]) == list(VARIANTS)
    assert results["config"]["steps_per_epoch"] == TINY["steps_per_epoch"]
    for name in VARIANTS:
        saved = np.load(output_dir / "predictions" / f"{name}.npz")
        truth = saved["test_labels"].tolist()
        train_labels = saved["train_labels"].tolist()
        assert results["num_test"] == len(truth) and results["num_train"] == len(train_labels)
        train, test = saved["train_embeddings"].tolist(), saved["test_embeddings"].tolist()
        metrics = results["metrics"][name]

        probabilities = saved["test_probabilities"].tolist()
        head_predictions = [max(range(num_classes), key=lambda c: (row[c], -c)) for row in probabilities]
        assert_close(metrics["classifier"], {**f1_scores(truth, head_predictions),
                                             **auc_scores(truth, probabilities, num_classes)})

        votes = [knn_vote(query, train, train_labels, TINY["knn_k"]) for query in test]
        knn_predictions = [winner for winner, _ in votes]
        assert saved["knn_predictions"].tolist() == knn_predictions, name
        shares = [[counts.get(c, 0) / TINY["knn_k"] for c in range(num_classes)] for _, counts in votes]
        np.testing.assert_allclose(saved["knn_scores"], shares, atol=1e-6, err_msg=name)
        assert_close(metrics["knn"], {**f1_scores(truth, knn_predictions), **auc_scores(truth, shares, num_classes)})

        assert_close(metrics["retrieval"], oracle_metrics(test, truth, train, train_labels, ks=(1, 5)))
        examples = 0 if name == "frozen" else TINY["epochs"] * TINY["steps_per_epoch"] * 4 * 2
        assert metrics["training"]["examples"] == examples
        assert len(results["history"][name]["head_loss" if name != "trained" else "loss"]) == TINY[
            "head_epochs" if name != "trained" else "epochs"]


@pytest.mark.slow
def test_markdown_table_shows_the_json_numbers(finished):
    _, output_dir, _, _ = finished
    metrics = json.loads((output_dir / "results.json").read_text())["metrics"]
    table = (output_dir / "results.md").read_text()
    assert "`frozen`'s kNN and retrieval columns are the untrained encoder's own embedding" in table
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| variant")}
    assert sorted(rows) == sorted(VARIANTS)
    for name in VARIANTS:
        cells = [cell.strip() for cell in rows[name].split("|")[2:-1]]
        assert cells[0] == f"{metrics[name]['classifier']['accuracy']:.3f}"
        assert cells[3] == f"{metrics[name]['knn']['accuracy']:.3f}"
        assert cells[5] == f"{metrics[name]['retrieval']['hit@1']:.3f}"
        assert cells[6] == f"{metrics[name]['retrieval']['hit@5']:.3f}"


@pytest.mark.slow
def test_projector_holds_each_variants_test_embeddings_with_text_and_label(finished):
    comparison, output_dir, _, _ = finished
    with open(output_dir / "projector" / "metadata.tsv", encoding="utf-8") as file:
        rows = list(csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert rows[0] == ["text", "label"]
    assert [row[0] for row in rows[1:]] == [" ".join(text.split()) for text in comparison.test_texts]
    assert [row[1] for row in rows[1:]] == [comparison.class_names[i] for i in comparison.test_labels]
    config = (output_dir / "projector" / "projector_config.pbtxt").read_text()
    reader = tf.train.load_checkpoint(str(output_dir / "projector" / "embeddings.ckpt"))
    for name, run in comparison.runs.items():
        tensor_name = f"{name}/.ATTRIBUTES/VARIABLE_VALUE"
        assert f'tensor_name: "{tensor_name}"' in config
        np.testing.assert_array_equal(reader.get_tensor(tensor_name), run.test_embeddings)


@pytest.mark.slow
def test_strings_in_models_reproduce_the_embeddings_and_leave_the_given_encoder_alone(finished):
    comparison, _, encoder, weights_before = finished
    for before, after in zip(weights_before, encoder.get_weights()):
        np.testing.assert_array_equal(before, after)
    texts = np.array(comparison.test_texts[:5], dtype=object)
    for name, run in comparison.runs.items():
        np.testing.assert_allclose(run.embedding_model.predict(texts, verbose=0), run.test_embeddings[:5], atol=1e-5)
        np.testing.assert_allclose(run.classifier.predict(texts, verbose=0), run.test_probabilities[:5], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(comparison.runs["siamese"].test_embeddings, axis=1), 1.0, atol=1e-5)
    assert comparison.runs["siamese"].history["monitor_knn_accuracy"] != []


@pytest.mark.parametrize(
    "change",
    [
        {"variants": ("frozen", "finetuned")},
        {"variants": ()},
        {"epochs": 0},
        {"steps_per_epoch": 1.5},
        {"classes_per_batch": 1},
        {"samples_per_class": True},
        {"learning_rate": 0.0},
        {"margin": -1.0},
        {"test_fraction": 1.0},
        {"hidden_units": (8, 0)},
        {"monitor_size": -1},
        {"knn_k": 0},
    ],
)
def test_bad_config_values_raise_value_error_before_any_training(corpus, change):
    texts, labels, _ = corpus

    def must_not_be_called():
        raise AssertionError("compare built an encoder before checking its config")

    with pytest.raises(ValueError):
        compare(must_not_be_called, texts, labels, ComparisonConfig(**{**TINY, **change}))


def test_knn_k_larger_than_the_training_set_raises_before_any_training(corpus):
    texts, labels, _ = corpus

    def must_not_be_called():
        raise AssertionError("compare built an encoder before checking knn_k")

    with pytest.raises(ValueError, match="knn_k=1000000 exceeds the"):
        compare(must_not_be_called, texts, labels, ComparisonConfig(**{**TINY, "knn_k": 1_000_000}))


def test_bad_encoders_and_class_names_raise_value_error(corpus, tiny_encoder_factory):
    texts, labels, _ = corpus
    config = ComparisonConfig(**{**TINY, "variants": ("frozen",)})
    with pytest.raises(ValueError, match="TextEncoder"):
        compare(keras.layers.Dense(4), texts, labels, config)
    with pytest.raises(ValueError, match="not a TextEncoder"):
        compare(lambda: "an encoder", texts, labels, config)
    with pytest.raises(ValueError, match="class_names"):
        compare(tiny_encoder_factory, texts, labels, config, class_names=["only", "two"])


@pytest.mark.slow
def test_cli_runs_end_to_end_without_figures(corpus, tmp_path):
    texts, labels, _ = corpus
    data = tmp_path / "corpus.jsonl"
    data.write_text("".join(json.dumps({"sentence": t, "topic": f"t{y}"}) + "\n" for t, y in zip(texts, labels)))
    output_dir = tmp_path / "out"
    code = main(["compare", "--data", str(data), "--columns", "sentence", "--label-column", "topic",
                 "--variants", "frozen,siamese", "--output-dir", str(output_dir), "--no-figures", *CLI_TINY])
    assert code == 0
    results = json.loads((output_dir / "results.json").read_text())
    assert list(results["metrics"]) == ["frozen", "siamese"]
    assert results["class_names"] == sorted({f"t{y}" for y in labels})
    assert results["num_train"] + results["num_test"] == len(texts)
    assert sorted(path.name for path in (output_dir / "predictions").iterdir()) == ["frozen.npz", "siamese.npz"]
    assert not list(output_dir.glob("*.png"))


@pytest.mark.slow
def test_cli_writes_figures_from_a_csv_file(corpus, tmp_path):
    texts, labels, _ = corpus
    data = tmp_path / "corpus.csv"
    with open(data, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["label", "text"])
        writer.writerows(zip(labels.tolist(), texts))
    output_dir = tmp_path / "out"
    assert main(["compare", "--data", str(data), "--variants", "frozen", "--output-dir", str(output_dir),
                 *CLI_TINY]) == 0
    assert sorted(path.name for path in output_dir.glob("*.png")) == ["curves.png", "map_frozen.png"]
    assert (output_dir / "results.md").read_text().count("| frozen |") == 1
