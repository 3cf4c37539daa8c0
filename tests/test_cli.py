"""The command line: every flag explained, bad values as one argparse line, train on a user's file."""

import argparse
import json
import os
import sys

import numpy as np
import pytest

from keras_siamese.cli import build_parser, main, program
from keras_siamese.export import check_serving, read_metadata



def _subcommands():
    parser = build_parser()
    (commands,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return commands.choices


@pytest.mark.parametrize("command", ["train", "compare", "export", "check-serving"])
def test_every_flag_has_help_with_its_default(command):
    parser = _subcommands()[command]
    flags = [action for action in parser._actions if action.option_strings and action.dest != "help"]
    assert flags
    for action in flags:
        assert action.help and len(action.help.split()) >= 2, f"{action.option_strings} has no help"
        assert "default" in action.help or "required" in action.help, f"{action.option_strings}: {action.help}"
    help_text = parser.format_help()
    if command in ("train", "compare"):
        assert "{pooled,cls,mean,max,mean_sqrt_len}" in help_text  # choices are listed
        assert "--encoder" in help_text and "--data" in help_text and "--label-column" in help_text
    if command == "train":
        assert "{auto,semihard,batch-hard,batch-all,mnrl,contrastive,online-contrastive,cosent,cosine}" in help_text


def test_train_and_compare_share_the_data_and_encoder_flags():
    commands = _subcommands()

    def flags(command, group):
        (found,) = [g for g in commands[command]._action_groups if g.title == group]
        return [a.option_strings for a in found._group_actions]

    for group in ("data", "encoder"):
        assert flags("train", group) and flags("train", group) == flags("compare", group)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["train", "--epochs", "0"], "epochs must be a positive integer, got 0"),
        (["train", "--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
        (["train", "--backup-steps", "0"], "backup_steps must be a positive integer, got 0"),
        (["train", "--pooling", "median"], "argument --pooling: invalid choice: 'median'"),
        (["train", "--precision", "int8"], "argument --precision: invalid choice: 'int8'"),
        (["train", "--matmul-precision", "fp8"], "argument --matmul-precision: invalid choice: 'fp8'"),
        (["train", "--margin", "nan"], "margin must be a finite number >= 0, got nan"),
        (["train", "--learning-rate", "-1"], "learning_rate must be a finite positive number"),
        (["train", "--samples-per-class", "1"], "samples_per_class must be an integer >= 2, got 1"),
        (["train", "--test-fraction", "1.5"], "test_fraction must be in (0, 1), got 1.5"),
        (["train", "--sequence-length", "2"], "sequence_length must be at least 3"),
        (["train", "--encoder", "no/such/dir"], "--encoder 'no/such/dir' is not a directory"),
        (["train", "--data", "missing.jsonl"], "missing.jsonl"),
        (["train", "--data", "corpus.txt"], "corpus.txt: expected a .jsonl, .json, .csv, .tsv, .parquet file"),
        (["compare", "--epochs", "0"], "epochs must be a positive integer, got 0"),
        (["compare", "--variants", "frozen,finetuned"], "variants must be a non-empty subset"),
        (["compare", "--hidden-units", "64,wide"], "expected comma-separated int values, got '64,wide'"),
        (["export", "--model", "m.keras"], "the following arguments are required: --out"),
        (["export", "--model", "m.keras", "--out", "o"], "m.keras: no such file"),
        (["export", "--model", "empty.keras", "--out", "o"], "empty.keras is not a readable .keras model file"),
        (["export", "--model", "corpus.txt", "--out", "o"], "corpus.txt is not a readable .keras model file"),
        (["export", "--model", "empty.keras", "--out", "o", "--version", "-3"], "--version must be a non-negative"),
        (["export", "--model", "empty.keras", "--out", "o", "--warmup-texts", "none.txt"], "none.txt"),
        (["check-serving", "."], "is not a SavedModel directory (no saved_model.pb)"),
        (["check-serving", ".", "--texts", "none.txt"], "none.txt: no such file"),
        (["check-serving", ".", "--texts", "latin1.txt"], "latin1.txt is not a readable texts file (UTF-8"),
        (["check-serving", ".", "--load-threads", "-2"], "ServingLoad.threads must be a positive integer"),
        (["check-serving", "graph"], "saved_model.pb is not a readable SavedModel graph"),
    ],
)
def test_bad_values_are_one_argparse_error_line(arguments, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus.txt").write_text("a text\n")
    (tmp_path / "empty.keras").write_bytes(b"")
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9\n".encode("latin-1"))
    (tmp_path / "graph").mkdir()
    (tmp_path / "graph" / "saved_model.pb").write_bytes(b"\x0a\xff\xff")
    with pytest.raises(SystemExit) as exit_info:
        main(arguments)
    assert exit_info.value.code == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and message in error_lines[0], error_lines


@pytest.mark.slow
@pytest.mark.needs_cxx
def test_train_on_a_users_jsonl_file_exports_a_servable_version(glosses, tmp_path, capsys):
    texts, labels = glosses
    keep = np.concatenate([np.flatnonzero(labels == label)[:16] for label in np.unique(labels)[:8]])
    data = tmp_path / "my.jsonl"
    data.write_text("".join(json.dumps({"id": int(i), "sentence": texts[i], "topic": f"topic {labels[i]}"}) + "\n"
                            for i in keep))
    output_dir = tmp_path / "run"
    status = main([
        "train", "--data", str(data), "--columns", "sentence", "--label-column", "topic",
        "--vocabulary-size", "500", "--hidden-dim", "32", "--embedding-dim", "16", "--output-units", "16",
        "--sequence-length", "24", "--epochs", "1", "--steps-per-epoch", "5",
        "--classes-per-batch", "4", "--test-fraction", "0.25", "--output-dir", str(output_dir), "--model-name", "topics",
        "--export-precision", "int8",
    ])
    assert status == 0
    printed = capsys.readouterr().out
    assert f"Data {data}: 96 training and 32 held-out texts, 8 classes." in printed
    summary = json.loads((output_dir / "summary.json").read_text())
    assert summary["saved_model"] == str(output_dir / "serving" / "topics" / "1")
    int8 = read_metadata(summary["saved_model"])["int8"]
    assert int8["calibration_texts"] + int8["held_out_texts"] == 96  # every training text, none held out
    assert f"int8: {int8['int8_matmuls']} matrix products in int8" in printed and "computing in int8" in printed
    probe = ["a domestic dog", "to move quickly", ""]
    report = check_serving(summary["saved_model"], probe)
    assert report.fused_ops.get("_QuantizedMatMul", 0) >= int8["int8_matmuls"] > 0
    assert report.embeddings.shape == (3, 16)
    assert "Untrained encoder" in printed
    np.testing.assert_allclose(np.linalg.norm(report.embeddings, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("given, expected", [(None, "1"), ("0", "0")])
def test_the_program_turns_onednn_rewrites_on_unless_the_environment_says(monkeypatch, given, expected):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "")  # restored afterwards, whatever the test sets
    if given is None:
        monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    else:
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", given)
    monkeypatch.setattr(sys, "argv", ["keras-siamese", "--help"])
    with pytest.raises(SystemExit) as exited:
        program()
    assert exited.value.code == 0 and os.environ["TF_ENABLE_ONEDNN_OPTS"] == expected


def test_renamed_flags_work_for_one_release_with_a_warning_naming_the_new_flag():
    parser = _subcommands()["train"]
    with pytest.warns(FutureWarning, match="--text-field is renamed --columns"):
        args = parser.parse_args(["--text-field", "sentence"])
    with pytest.warns(FutureWarning, match="--label-field is renamed --label-column"):
        args = parser.parse_args(["--text-field", "sentence", "--label-field", "topic"])
    assert args.columns == ("sentence",) and args.label_column == "topic"
    assert parser.parse_args([]).columns == ()  # the new flag's default where the old name is not given
