"""RetrievalEvaluation and InformationRetrievalEvaluation in model.fit, on a Dense embedding model over
float features and on a tiny ALBERT over texts."""

import keras
import numpy as np
import pytest

from keras_siamese.evaluation import (
    InformationRetrievalEvaluation,
    RetrievalEvaluation,
    information_retrieval_metrics,
    retrieval_metrics,
)
from tests.harness import check_bad_input


def clustered_points(seed, count=60, classes=4, dimension=8, noise=1.5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dimension)) * 2
    labels = np.arange(count) % classes
    return (centres[labels] + rng.normal(size=(count, dimension)) * noise).astype("float32"), labels


def embedding_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def leave_one_out_hit_at_1(embeddings, labels):
    """Plain numpy: does each point's most similar other point share its label?"""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    return float(np.mean(labels[similarity.argmax(axis=1)] == labels))


class RecordEmbeddings(keras.callbacks.Callback):
    def __init__(self, inputs):
        super().__init__()
        self.inputs, self.seen = inputs, []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append((self.model.predict(self.inputs, verbose=0), dict(logs)))


def test_metrics_reach_the_logs_and_history():
    train_x, train_y = clustered_points(0)
    val_x, val_y = clustered_points(1)
    model = embedding_model()
    recorder = RecordEmbeddings(val_x)
    history = model.fit(
        train_x, np.eye(4)[train_y], epochs=3, verbose=0,
        callbacks=[RetrievalEvaluation(val_x, val_y, ks=(1, 3)), recorder],
    )
    assert {"val_hit@1", "val_hit@3", "val_mrr", "val_map@r"} <= set(history.history)
    for embeddings, logs in recorder.seen:
        assert logs["val_hit@1"] == pytest.approx(leave_one_out_hit_at_1(embeddings, val_y))
    assert history.history["val_hit@1"] == [logs["val_hit@1"] for _, logs in recorder.seen]


def test_model_checkpoint_keeps_the_epoch_with_the_best_hit_at_1(tmp_path):
    train_x, train_y = clustered_points(0)
    val_x, val_y = clustered_points(1, noise=2.5)
    model = embedding_model(seed=3)
    path = str(tmp_path / "best.keras")
    history = model.fit(
        train_x, np.eye(4)[train_y], epochs=6, verbose=0,
        callbacks=[
            RetrievalEvaluation(val_x, val_y),
            keras.callbacks.ModelCheckpoint(path, monitor="val_hit@1", mode="max", save_best_only=True),
        ],
    )
    scores = history.history["val_hit@1"]
    best = keras.saving.load_model(path)
    assert leave_one_out_hit_at_1(best.predict(val_x, verbose=0), val_y) == pytest.approx(max(scores))
    assert len(set(scores)) > 1  # training moved the metric, so "best" chose among epochs


def test_early_stopping_on_a_flat_metric():
    train_x, train_y = clustered_points(0)
    model = embedding_model()
    model.optimizer.learning_rate.assign(0.0)  # embeddings never change
    history = model.fit(
        train_x, np.eye(4)[train_y], epochs=10, verbose=0,
        callbacks=[
            RetrievalEvaluation(train_x, train_y),
            keras.callbacks.EarlyStopping(monitor="val_map@r", mode="max", patience=2),
        ],
    )
    assert len(history.history["val_map@r"]) == 3


def test_separate_corpus_and_embedding_function():
    queries, query_labels = clustered_points(1, count=12)
    corpus, corpus_labels = clustered_points(2, count=20)
    projection = np.random.default_rng(5).normal(size=(8, 3)).astype("float32")
    callback = RetrievalEvaluation(
        queries, query_labels, corpus, corpus_labels, prefix="test/", embed_fn=lambda x: x @ projection
    )
    logs = {"loss": 1.0}
    callback.on_epoch_end(0, logs)
    expected = retrieval_metrics(queries @ projection, query_labels, corpus @ projection, corpus_labels)
    assert logs == {"loss": 1.0, **{"test/" + name: value for name, value in expected.items()}}


def test_corpus_needs_its_labels():
    with pytest.raises(ValueError, match="together"):
        RetrievalEvaluation(np.ones((2, 8)), [0, 1], corpus=np.ones((2, 8)))


BAD_INPUT = {
    "RetrievalEvaluation ks 0": (lambda: RetrievalEvaluation(["a", "b"], [0, 1], ks=(1, 0)), ValueError,
                                 "ks must be positive integers, got 0"),
    "RetrievalEvaluation labels per query": (lambda: RetrievalEvaluation(["a", "b"], [0]), ValueError,
                                             "query_labels has 1 labels for 2 queries"),
    "RetrievalEvaluation corpus without labels": (lambda: RetrievalEvaluation(["a"], [0], corpus=["b"]),
                                                  ValueError, "Give corpus and corpus_labels together"),
    "RetrievalEvaluation embed_fn": (lambda: RetrievalEvaluation(["a"], [0], embed_fn="encode"), ValueError,
                                     "embed_fn must be callable, got str"),
    "InformationRetrievalEvaluation relevant per query": (
        lambda: InformationRetrievalEvaluation(["a", "b"], ["c", "d"], [{0}]), ValueError,
        "relevant has 1 entries for 2 queries"),
    "InformationRetrievalEvaluation index beyond the corpus": (
        lambda: InformationRetrievalEvaluation(["a"], ["c"], [{1}]), ValueError,
        "relevant[0] holds 1, not a corpus position (an integer in [0, 1))"),
    "InformationRetrievalEvaluation no relevant document": (
        lambda: InformationRetrievalEvaluation(np.ones((2, 8)), np.ones((3, 8)), [{0}, []]), ValueError,
        "relevant[1] is empty"),
    "InformationRetrievalEvaluation ks 0": (
        lambda: InformationRetrievalEvaluation(["a"], ["c"], [{0}], ks=(0,)), ValueError,
        "ks must be positive integers, got 0"),
    "InformationRetrievalEvaluation embed_fn": (
        lambda: InformationRetrievalEvaluation(["a"], ["c"], [{0}], embed_fn=1), ValueError,
        "embed_fn must be callable, got int"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])


def test_the_baseline_is_measured_once_before_training_and_printed_beside_each_epoch(capsys):
    train_x, train_y = clustered_points(0)
    val_x, val_y = clustered_points(1)
    model = embedding_model(seed=2)
    untrained = keras.models.clone_model(model)
    untrained.set_weights(model.get_weights())
    expected = leave_one_out_hit_at_1(untrained.predict(val_x, verbose=0), val_y)
    # The trained model itself as its baseline: measured at creation, so training cannot move it.
    evaluation = RetrievalEvaluation(val_x, val_y, baseline=model, verbose=1)
    assert evaluation.baseline_metrics["val_hit@1"] == pytest.approx(expected)
    model.fit(train_x, np.eye(4)[train_y], epochs=2, verbose=0, callbacks=[evaluation])
    assert evaluation.baseline_metrics["val_hit@1"] == pytest.approx(expected)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2
    assert all("val_hit@1 " in line and f"(untrained encoder {expected:.4f})" in line for line in printed)


def same_label_documents(query_labels, corpus_labels):
    return [set(np.flatnonzero(corpus_labels == label).tolist()) for label in query_labels]


def test_information_retrieval_metrics_reach_the_logs_and_history():
    train_x, train_y = clustered_points(0)
    queries, query_labels = clustered_points(1, count=12)
    corpus, corpus_labels = clustered_points(2, count=40)
    relevant = same_label_documents(query_labels, corpus_labels)
    model = embedding_model()
    recorder = RecordEmbeddings(np.concatenate([queries, corpus]))
    evaluation = InformationRetrievalEvaluation(queries, corpus, relevant, ks=(1, 10))
    history = model.fit(train_x, np.eye(4)[train_y], epochs=2, verbose=0, callbacks=[evaluation, recorder])
    names = [f"val_{name}@{k}" for name in ("accuracy", "precision", "recall", "mrr", "ndcg", "map") for k in (1, 10)]
    assert sorted(history.history) == sorted(["loss", *names])
    for embeddings, logs in recorder.seen:
        expected = information_retrieval_metrics(embeddings[:12], embeddings[12:], relevant, ks=(1, 10))
        assert {name: logs["val_" + name] for name in expected} == pytest.approx(expected)


def test_information_retrieval_of_a_text_model_beside_its_baseline(tiny_encoder_factory, glosses, capsys):
    from keras_siamese.models import TripletSemiHard

    texts, labels = glosses
    rows = np.concatenate([np.flatnonzero(labels == label)[:6] for label in np.unique(labels)[:4]])
    texts, labels = np.array([texts[row] for row in rows], object), labels[rows]
    held_out = np.arange(len(rows)) % 3 == 0
    queries, corpus = texts[held_out], texts[~held_out]
    relevant = same_label_documents(labels[held_out], labels[~held_out])
    keras.utils.set_random_seed(0)
    model = TripletSemiHard.from_encoder(tiny_encoder_factory())
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    before = information_retrieval_metrics(model.encode(queries), model.encode(corpus), relevant, ks=(1, 3))
    evaluation = InformationRetrievalEvaluation(queries, corpus, relevant, ks=(1, 3), baseline=model, verbose=1)
    logs = {}
    model.fit(corpus, labels[~held_out], batch_size=16, epochs=1, verbose=0, callbacks=[evaluation])
    evaluation.on_epoch_end(1, logs)
    after = information_retrieval_metrics(model.encode(queries), model.encode(corpus), relevant, ks=(1, 3))
    assert evaluation.baseline_metrics == pytest.approx({"val_" + name: value for name, value in before.items()})
    assert logs == pytest.approx({"val_" + name: value for name, value in after.items()})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and printed[1].startswith("Epoch 2: val_accuracy@1 ")
    assert f"val_ndcg@3 {after['ndcg@3']:.4f} (untrained encoder {before['ndcg@3']:.4f})" in printed[1]
