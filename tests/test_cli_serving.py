"""`keras-siamese export` and `keras-siamese check-serving`: a .keras checkpoint to a served version."""

import os
import subprocess

import keras
import numpy as np
import pytest

from keras_siamese.cli import main
from keras_siamese.export import check_serving, read_metadata
from keras_siamese.models import TripletSemiHard

TEXTS = ["a domestic dog", "", "狗 🐕 chien", "word " * 500]


@pytest.fixture(scope="module")
def checkpoint(tiny_encoder_factory, tmp_path_factory):
    """(model, path): a mean-pooled model saved as ModelCheckpoint saves it."""
    keras.utils.set_random_seed(0)
    model = TripletSemiHard.from_encoder(tiny_encoder_factory(), pooling="mean", output_units=8)
    path = tmp_path_factory.mktemp("checkpoints") / "epoch01.keras"
    model.save(path)
    return model, str(path)


@pytest.mark.slow
@pytest.mark.needs_cxx
def test_export_from_a_checkpoint_gives_a_version_that_check_serving_passes(checkpoint, tmp_path, capsys):
    model, path = checkpoint
    warmup = tmp_path / "warmup.txt"
    warmup.write_text("a dog\nto run fast\n", encoding="utf-8")
    out = tmp_path / "serving" / "wordnet"
    assert main(["export", "--model", path, "--out", str(out), "--version", "3",
                 "--warmup-texts", str(warmup)]) == 0
    version_dir = str(out / "3")
    assert capsys.readouterr().out.strip() == version_dir
    assert read_metadata(version_dir)["pooling"] == "mean"

    assert main(["check-serving", version_dir]) == 0
    report_text = capsys.readouterr().out
    assert "serving check passed" in report_text and "2 record(s) replayed" in report_text
    served = check_serving(version_dir, TEXTS).embeddings
    np.testing.assert_allclose(served, model.predict(TEXTS, verbose=0), atol=1e-5)

    # The installed console script gives the same exit status.
    script = subprocess.run(["keras-siamese", "check-serving", version_dir, "--no-warmup"],
                            capture_output=True, text=True)
    assert script.returncode == 0, script.stderr
    assert "serving check passed" in script.stdout


def test_a_refused_export_exits_1_and_bad_files_exit_2_with_one_line(checkpoint, tmp_path, capsys):
    _, path = checkpoint
    out = tmp_path / "m"
    os.makedirs(out / "1")
    assert main(["export", "--model", path, "--out", str(out), "--version", "1"]) == 1
    assert "Version 1 already exists" in capsys.readouterr().err
    for arguments, words in [
        (["--model", str(tmp_path / "missing.keras")], "missing.keras: no such file"),
        (["--model", path, "--version", "2", "--warmup-texts", str(tmp_path / "no-such-file.txt")],
         "no-such-file.txt"),
    ]:
        with pytest.raises(SystemExit) as exit:
            main(["export", "--out", str(out), *arguments])
        error_lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert exit.value.code == 2 and len(error_lines) == 1 and words in error_lines[0]
    assert sorted(os.listdir(out)) == ["1"]


def test_check_serving_of_a_directory_without_a_saved_model_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["check-serving", str(tmp_path)])
    assert exit.value.code == 2 and "no saved_model.pb" in capsys.readouterr().err


def test_usage_errors_exit_with_status_2(capsys):
    with pytest.raises(SystemExit) as error:
        main(["export", "--out", "serving/m"])
    assert error.value.code == 2
    assert "--model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as error:
        main(["export", "--model", "m.keras", "--out", "o", "--signatures", "ids"])
    assert error.value.code == 2


def test_export_to_sentence_transformers_and_to_a_preset(checkpoint, tmp_path, capsys):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from keras_siamese.models import SentenceEmbedder

    model, path = checkpoint
    assert main(["export", "--model", path, "--out", str(tmp_path / "st"), "--format", "sentence-transformers"]) == 0
    assert main(["export", "--model", path, "--out", str(tmp_path / "preset"), "--format", "preset"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "st"), str(tmp_path / "preset")]
    theirs = sentence_transformers.SentenceTransformer(str(tmp_path / "st"), device="cpu").encode(TEXTS)
    ours = model.predict(TEXTS, verbose=0)
    assert np.min(np.sum(ours * theirs, axis=1) / np.linalg.norm(theirs, axis=1)) >= 0.9999
    np.testing.assert_array_equal(SentenceEmbedder.from_preset(tmp_path / "preset").encode(TEXTS), model.encode(TEXTS))
    with pytest.raises(SystemExit) as exit:
        main(["export", "--model", path, "--out", str(tmp_path / "p2"), "--format", "preset", "--version", "2"])
    assert exit.value.code == 2 and "--version applies to --format saved-model only" in capsys.readouterr().err
    assert not (tmp_path / "p2").exists()
