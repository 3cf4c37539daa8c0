import json
import os
import random
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers TF Text's ops for the Python reference
from tensorflow_serving.apis import prediction_log_pb2

from keras_siamese.cli import main
from keras_siamese.export import (
    ServingCheckBuildError,
    ServingCheckConcurrencyError,
    ServingCheckError,
    ServingCheckLoadError,
    ServingCheckRunError,
    ServingCheckTimeoutError,
    ServingCheckWarmupError,
    ServingLoad,
    ServingLoadReport,
    UnsupportedOpsError,
    build_serving_check,
    check_serving,
    export_saved_model,
)
from keras_siamese.export.requests import grpc_predict_request
from keras_siamese.export.warmup import WARMUP_FILE, write_warmup_requests
from keras_siamese.models import TripletSemiHard
from tests.export.serving_models import (
    damaged_artefacts,
    damaged_file,
    rename_op,
    save_pair_packing_model,
    sentencepiece_proto,
)
from tests.harness import check_bad_input

pytestmark = pytest.mark.needs_cxx  # the C++ serving check compiles against the TF wheel

PROBE_TEXTS = ["a domestic dog", "", "   ", "狗 🐕 chien", "word " * 2000, b"\xff\xfe not utf-8"]


def python_reference(version_dir, texts):
    """The same SavedModel, loaded and run by Python TensorFlow."""
    serve = tf.saved_model.load(version_dir).signatures["serving_default"]
    return serve(text=tf.constant(texts))["embedding"].numpy()


@pytest.fixture(scope="module", params=["pooled", "mean"])
def exported(request, tiny_encoder_factory, tmp_path_factory):
    """(model, version_dir): the study's recipe (pooled output) and the main job's (mean-pooled)."""
    keras.utils.set_random_seed(0)
    model = TripletSemiHard.from_encoder(tiny_encoder_factory(), pooling=request.param, output_units=8)
    version_dir = export_saved_model(model, tmp_path_factory.mktemp("serving") / request.param,
                                     warmup_texts=PROBE_TEXTS[:4], warmup_batch_sizes=[1, 4, 7])
    return model, version_dir


def test_cpp_loader_serves_what_keras_predicts(exported):
    model, version_dir = exported
    report = check_serving(version_dir, PROBE_TEXTS, batch_size=4)
    expected = model.predict(PROBE_TEXTS[:5], verbose=0)  # all but the raw bytes
    np.testing.assert_allclose(report.embeddings[:5], expected, atol=1e-5)
    np.testing.assert_allclose(report.embeddings, python_reference(version_dir, PROBE_TEXTS), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(report.embeddings, axis=1), 1.0, atol=1e-5)
    assert report.warmup_records == 3
    assert len(report.latencies_seconds) == 2  # requests of 4 and 2 texts
    assert report.signatures == {
        "serving_default": {
            "method_name": "tensorflow/serving/predict",
            "inputs": {"text": {"dtype": "DT_STRING", "shape": [-1]}},
            "outputs": {"embedding": {"dtype": "DT_FLOAT", "shape": [-1, 8]}},
        }
    }
    assert any(path.endswith("_sentencepiece_tokenizer.so") for path in report.op_libraries)
    summary = report.summary()
    assert "serving check passed" in summary and "3 record(s) replayed" in summary


def test_cpp_loader_runs_the_fused_kernels(exported, tmp_path, monkeypatch):
    from keras_siamese.layers.fusion import set_fused_graph

    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")  # TF's oneDNN rewrite, as TF Serving's x86 builds run it
    model, version_dir = exported
    report = check_serving(version_dir, PROBE_TEXTS[:3])
    fused = report.fused_ops
    # ALBERT's one shared transformer layer runs twice: 2 x (4 attention projections + 2 feed-forward
    # dense layers) fused matrix products, 2 x 2 layer norms and the embeddings' one.
    assert fused.get("_MklNativeFusedMatMul", 0) >= 12 and fused.get("_MklLayerNorm", 0) >= 5
    assert fused.get("_MklFusedBatchMatMulV2", 0) == 2  # each attention's scores, scale and mask in one kernel
    set_fused_graph(False)
    try:
        stock_dir = export_saved_model(model, tmp_path / "stock")
    finally:
        set_fused_graph(True)
    stock = check_serving(stock_dir, PROBE_TEXTS[:3])
    assert "_MklLayerNorm" not in stock.fused_ops and "_MklFusedBatchMatMulV2" not in stock.fused_ops
    assert stock.fused_ops.get("_MklNativeFusedMatMul", 0) < fused["_MklNativeFusedMatMul"]
    np.testing.assert_allclose(stock.embeddings, report.embeddings, atol=1e-5)
    assert "fused kernels in one request: _MklFusedBatchMatMulV2 x" in report.summary()


def test_round_robin_trim_model_runs_in_cpp(glosses, tmp_path):
    module = save_pair_packing_model(tmp_path / "1", sentencepiece_proto(glosses[0][:300]))
    report = check_serving(tmp_path / "1", PROBE_TEXTS)
    np.testing.assert_allclose(
        report.embeddings, module.serve(tf.constant(PROBE_TEXTS))["embedding"].numpy(), atol=1e-5
    )


def test_op_outside_the_allowed_set_fails_with_its_name(glosses, tmp_path):
    save_pair_packing_model(tmp_path / "1", sentencepiece_proto(glosses[0][:300]))
    rename_op(tmp_path / "1", "Rsqrt", "Custom>FastRsqrt")
    with pytest.raises(UnsupportedOpsError, match="Custom>FastRsqrt"):
        check_serving(tmp_path / "1")
    # LoadSavedModel instantiates graph functions lazily, so C++ accepts the
    # model and fails on the first request; with warmup, before serving.
    with pytest.raises(ServingCheckRunError, match="failed at run: Op type not registered 'Custom>FastRsqrt'"):
        check_serving(tmp_path / "1", check_ops=False)
    write_warmup_requests(tmp_path / "1", ["a dog"])
    with pytest.raises(ServingCheckWarmupError, match="failed at warmup: Op type not registered") as error:
        check_serving(tmp_path / "1", check_ops=False)
    assert isinstance(error.value, ServingCheckError) and error.value.stage == "warmup"


def test_warmup_record_that_does_not_fit_the_signature_fails_the_check(exported, tmp_path):
    _, version_dir = exported
    copy = tmp_path / "1"
    subprocess.run(["cp", "-r", version_dir, str(copy)], check=True)
    write_warmup_requests(copy, ["a dog"], input_name="sentence")
    with pytest.raises(ServingCheckWarmupError, match="failed at warmup: input sentence is not in signature"):
        check_serving(copy)
    assert check_serving(copy, warmup=False).warmup_records == 0
    # A request naming no signature runs serving_default; its output_filter reaches the C++ Predict.
    request = grpc_predict_request(["a dog"], "", signature_name="")
    request.output_filter.append("norms")
    with tf.io.TFRecordWriter(str(copy / WARMUP_FILE)) as writer:
        writer.write(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString())
    with pytest.raises(ServingCheckWarmupError,
                       match="failed at warmup: output_filter names norms, not an output of serving_default"):
        check_serving(copy)


def test_warmup_records_the_check_cannot_replay_fail_it_at_warmup(exported, tmp_path):
    _, version_dir = exported
    copy = tmp_path / "1"
    subprocess.run(["cp", "-r", version_dir, str(copy)], check=True)

    def write(logs):
        with tf.io.TFRecordWriter(str(copy / WARMUP_FILE)) as writer:
            for log in logs:
                writer.write(log.SerializeToString())

    predict = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(
        request=grpc_predict_request(["a dog"], "")))
    for logs, message in [
        ([predict, prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog())],
         "warmup record 2 holds classify_log; this check replays predict_log records only"),
        ([predict, prediction_log_pb2.PredictionLog()], "warmup record 2 holds no log"),
        ([predict] * 1001, "more than 1000 warmup records; TF Serving refuses the model"),
    ]:
        write(logs)
        with pytest.raises(ServingCheckWarmupError, match=f"failed at warmup: {message}"):
            check_serving(copy)
    write([predict] * 1000)
    assert check_serving(copy).warmup_records == 1000


def test_damaged_artefacts_name_the_file_and_what_is_wrong(exported, tmp_path, capsys):
    _, version_dir = exported
    copy = tmp_path / "1"
    subprocess.run(["cp", "-r", version_dir, str(copy)], check=True)
    warmup = copy / "assets.extra" / "tf_serving_warmup_requests"
    warmup.write_bytes(warmup.read_bytes()[:-7])
    with pytest.raises(ServingCheckWarmupError,
                       match="failed at warmup: .*tf_serving_warmup_requests is not a readable .*: truncated record"):
        check_serving(copy)
    assert main(["check-serving", str(copy)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    graph = copy / "saved_model.pb"
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    with pytest.raises(ServingCheckLoadError, match="failed at load: "):
        check_serving(copy, check_ops=False)
    with pytest.raises(SystemExit) as exit:
        main(["check-serving", str(copy)])
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert exit.value.code == 2 and len([line for line in error_lines if "error:" in line]) == 1
    assert "saved_model.pb is not a readable SavedModel graph (saved_model.pb): Error parsing" in error_lines[-1]


def test_command_line_report_and_exit_status(exported, tmp_path, capsys):
    _, version_dir = exported
    texts_file = tmp_path / "texts.txt"
    texts_file.write_text("a dog\n\nto run fast\n", encoding="utf-8")
    assert main(["check-serving", version_dir, "--texts", str(texts_file), "--batch-size", "1"]) == 0
    out = capsys.readouterr().out
    assert "3 text(s) in 3 request(s)" in out and "embedding: 3 x 8 float32" in out
    with pytest.raises(SystemExit) as exit:
        main(["check-serving", str(tmp_path / "missing"), "--no-warmup"])
    assert exit.value.code == 2 and "no saved_model.pb" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(texts=[]), "texts is empty"),
        (dict(texts="one string"), "not one string"),
        (dict(texts=[1.5]), "str or bytes"),
        (dict(batch_size=0), "positive integer"),
        (dict(signature_name="missing"), "failed at signature: no signature missing"),
        (dict(output_name="norms"), "failed at signature: .* has no float32 output \"norms\""),
    ],
)
def test_bad_arguments_fail_clearly(exported, kwargs, message):
    with pytest.raises((ValueError, ServingCheckRunError), match=message):
        check_serving(exported[1], **kwargs)


def test_binary_is_built_once_per_tensorflow_version_and_source(tmp_path, monkeypatch):
    binary = build_serving_check()
    assert os.access(binary, os.X_OK) and f"tf{tf.__version__}" in os.path.basename(binary)
    built_at = os.stat(binary).st_mtime_ns
    assert build_serving_check() == binary and os.stat(binary).st_mtime_ns == built_at
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    fresh_cache = tmp_path / "cache"
    with pytest.raises(ServingCheckBuildError, match="failed") as error:
        build_serving_check(fresh_cache)
    assert error.value.stage == "build" and os.listdir(fresh_cache) == []
    monkeypatch.setenv("CXX", "")
    monkeypatch.setenv("PATH", str(tmp_path))  # no g++ or c++ there
    with pytest.raises(ServingCheckBuildError, match="needs a C\\+\\+17 compiler") as error:
        build_serving_check(fresh_cache)
    assert error.value.stage == "build"


FAKE_CHECKER = """#!{python}
import os, sys, time
reply = os.environ["FAKE_CHECKER_REPLY"]
if reply == "hang":
    time.sleep(60)
import numpy as np
np.ones((1, 2), np.float32).tofile(sys.argv[sys.argv.index("--embeddings") + 1])
print(reply)
"""
PASSED = {
    "ok": True, "model_dir": "m/1", "op_libraries": [], "load_seconds": 0.1, "signatures": {},
    "warmup_file": None, "warmup_records": 0, "warmup_seconds": 0.0, "signature": "serving_default",
    "output": "embedding", "rows": 1, "columns": 2, "batch_size": 1, "latencies_seconds": [0.01],
    "executed_ops": {}, "load": None,
}
UNDER_LOAD = {"threads": 2, "requests_per_thread": 3, "seconds": 0.1, "max_difference": 0.25,
              "min_norm": 1.0, "max_norm": 1.0, "non_finite_values": 0}


@pytest.fixture
def fake_checker(tmp_path, monkeypatch):
    """A version directory and a stand-in for the C++ checker that prints $FAKE_CHECKER_REPLY."""
    import keras_siamese.export.serving_check as serving_check

    checker = tmp_path / "fake_checker"
    checker.write_text(FAKE_CHECKER.format(python=sys.executable))
    checker.chmod(0o755)
    monkeypatch.setattr(serving_check, "build_serving_check", lambda cache_dir=None: str(checker))
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"")
    return tmp_path / "1"


@pytest.mark.parametrize(
    "stage, error_class",
    [
        ("op_libraries", ServingCheckLoadError),
        ("load", ServingCheckLoadError),
        ("warmup", ServingCheckWarmupError),
        ("signature", ServingCheckRunError),
        ("run", ServingCheckRunError),
        ("trace", ServingCheckRunError),
        ("concurrency", ServingCheckConcurrencyError),
        ("usage", ServingCheckError),
    ],
)
def test_each_stage_of_the_checker_raises_its_error_class(fake_checker, monkeypatch, stage, error_class):
    monkeypatch.setenv("FAKE_CHECKER_REPLY", json.dumps({"ok": False, "stage": stage, "error": "it broke"}))
    with pytest.raises(error_class, match=f"failed at {stage}: it broke") as error:
        check_serving(fake_checker, check_ops=False)
    assert type(error.value) is error_class and error.value.stage == stage


def test_crash_timeout_and_answers_that_differ_under_load_raise_their_error_class(fake_checker, monkeypatch):
    monkeypatch.setenv("FAKE_CHECKER_REPLY", json.dumps(PASSED))
    assert check_serving(fake_checker, check_ops=False).embeddings.tolist() == [[1.0, 1.0]]
    monkeypatch.setenv("FAKE_CHECKER_REPLY", "Segmentation fault")
    with pytest.raises(ServingCheckError, match="crashed") as error:
        check_serving(fake_checker, check_ops=False)
    assert type(error.value) is ServingCheckError and error.value.stage == "crash"
    monkeypatch.setenv("FAKE_CHECKER_REPLY", "hang")
    with pytest.raises(ServingCheckTimeoutError, match="did not finish in 0.5 s") as error:
        check_serving(fake_checker, check_ops=False, timeout=0.5)
    assert error.value.stage == "timeout"
    monkeypatch.setenv("FAKE_CHECKER_REPLY", json.dumps({**PASSED, "load": UNDER_LOAD}))
    load = ServingLoad(threads=2, requests=3, tolerance=0.1)
    with pytest.raises(ServingCheckConcurrencyError, match="failed under load: .* up to 0.25 away") as error:
        check_serving(fake_checker, check_ops=False, load=load)
    assert error.value.stage == "concurrency"
    assert check_serving(fake_checker, check_ops=False, load=ServingLoad(2, 3, tolerance=0.5)).load == \
        ServingLoadReport(**UNDER_LOAD)


def _mixed_texts(count, seed=0):
    rng = random.Random(seed)
    kinds = [
        lambda: "",
        lambda: rng.choice([" ", "\t\n", "   \u3000 "]),
        lambda: "".join(rng.choice("狗猫鸟鱼的是在🐕🐈🎉😀👍🏽") for _ in range(rng.randint(1, 40))),
        lambda: "".join(rng.choice("abcdefgh ") for _ in range(10_000)),
        lambda: bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))),
        lambda: "a small domestic dog that barks",
    ]
    return [kinds[i % len(kinds)]() for i in range(count)]


@pytest.mark.slow
def test_eight_clients_at_once_get_what_one_request_alone_gets(exported):
    _, version_dir = exported
    texts = _mixed_texts(1000)
    load = ServingLoad(threads=8, requests=400, max_batch_size=64)
    report = check_serving(version_dir, texts, batch_size=1, load=load)
    # One text per request, in the C++ loader, is what Python TensorFlow computes.
    assert report.embeddings.shape == (1000, 8) and len(report.latencies_seconds) == 1000
    np.testing.assert_allclose(report.embeddings, python_reference(version_dir, texts), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(report.embeddings, axis=1), 1.0, atol=1e-5)
    # 8 threads x 400 requests of 1 to 64 of the mixed texts, all through one session.
    assert (report.load.threads, report.load.requests_per_thread) == (8, 400)
    assert report.load.non_finite_values == 0 and report.load.max_difference <= 1e-5
    assert abs(report.load.min_norm - 1) <= 1e-5 and abs(report.load.max_norm - 1) <= 1e-5
    assert "8 threads x 400 requests at once" in report.summary()


def test_load_plan_covers_batch_sizes_one_to_the_maximum():
    plan = ServingLoad(requests=500, max_batch_size=64).plan(text_count=7)
    sizes = {len(request) for request in plan}
    assert len(plan) == 500 and min(sizes) == 1 and max(sizes) == 64
    assert all(0 <= index < 7 for request in plan for index in request)


EXPORT_FOREVER = """
import sys
import keras
from keras_siamese.export import export_saved_model
from keras_siamese.layers import L2Normalize
text = keras.Input(shape=(), dtype="string", name="text")
ids = keras.layers.Hashing(num_bins=64)(text)
model = keras.Model(text, L2Normalize()(keras.layers.Embedding(64, 4)(ids)))
print("ready", flush=True)
while True:
    print(export_saved_model(model, sys.argv[1], warmup_texts=["a dog", ""]), flush=True)
    if len(sys.argv) > 2:
        break
"""


def _tree_bytes(root):
    files = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as file:
                files[os.path.relpath(path, root)] = file.read()
    return files


@pytest.mark.slow
def test_export_killed_at_random_moments_never_leaves_a_loadable_half_version(tmp_path):
    base = tmp_path / "m"
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", EXPORT_FOREVER, str(base), "once"], check=True,
                   env=environment, capture_output=True)
    first_version = _tree_bytes(base / "1")
    rng = random.Random(0)
    checked = {"1"}
    for _ in range(10):
        child = subprocess.Popen([sys.executable, "-c", EXPORT_FOREVER, str(base)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=environment, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 3.0))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        for name in sorted(os.listdir(base)):
            # TF Serving only considers directories named by an integer.
            assert name.isdigit() or name.startswith(".partial-"), name
            if name.isdigit() and name not in checked:
                report = check_serving(base / name, ["a dog", ""])
                assert report.warmup_records == 2
                np.testing.assert_allclose(np.linalg.norm(report.embeddings, axis=1), 1.0, atol=1e-5)
                checked.add(name)
    assert _tree_bytes(base / "1") == first_version


BAD_INPUT = {
    "ServingLoad of 0 threads": (lambda: ServingLoad(threads=0), ValueError,
                                 "ServingLoad.threads must be a positive integer, got 0"),
    "ServingLoad tolerance": (lambda: ServingLoad(tolerance=-1e-5), ValueError, "tolerance must be a number >= 0"),
    "load that is not a ServingLoad": (lambda: check_serving(damaged_file("graph/1"), load=8), ValueError,
                                       "load must be a ServingLoad or None, got 8"),
    "no SavedModel to check": (lambda: check_serving(damaged_artefacts()), ValueError,
                               "is not a SavedModel directory"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
