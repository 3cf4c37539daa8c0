import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_siamese
from keras_siamese.artifacts import UnreadableFileError
from keras_siamese.export import UnsupportedOpsError, export_saved_model, next_version, ops, read_metadata, saved_model
from keras_siamese.layers import L2Normalize
from keras_siamese.models import TripletSemiHard
from tests.export.serving_models import damaged_file
from tests.harness import check_bad_input, scratch_dir

PROBE_TEXTS = [
    "a domestic dog",
    "",
    "   ",
    "to move very fast",
    "狗 🐕 chien",
    "word " * 300,
]

RELOAD_IN_FRESH_PROCESS = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the SentencePiece ops
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
texts = json.load(open(sys.argv[2]))
out = serve(text=tf.constant(texts + [b"\\xff\\xfe not utf-8"]))
assert set(out) == {"embedding"}, out.keys()
assert not any(m.startswith("keras_siamese") for m in sys.modules)
np.save(sys.argv[3], out["embedding"].numpy())
"""


@pytest.fixture(scope="module")
def model(tiny_encoder_factory):
    keras.utils.set_random_seed(0)
    return TripletSemiHard.from_encoder(tiny_encoder_factory(), pooling="mean", output_units=8)


def test_fresh_process_reload_equals_predict(model, tmp_path):
    version_dir = export_saved_model(model, tmp_path / "serving" / "demo")
    assert version_dir == str(tmp_path / "serving" / "demo" / "1")
    (tmp_path / "texts.json").write_text(json.dumps(PROBE_TEXTS))
    subprocess.run(
        [sys.executable, "-c", RELOAD_IN_FRESH_PROCESS, version_dir,
         str(tmp_path / "texts.json"), str(tmp_path / "out.npy")],
        check=True,
    )
    served = np.load(tmp_path / "out.npy")
    expected = model.predict(PROBE_TEXTS, verbose=0)
    assert served.shape == (len(PROBE_TEXTS) + 1, 8) and served.dtype == np.float32
    np.testing.assert_allclose(served[:-1], expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)


def test_versions_count_up_and_are_never_overwritten(model, tmp_path):
    base = tmp_path / "m"
    assert next_version(base) == 1
    os.makedirs(base / "7")
    os.makedirs(base / "not-a-version")
    assert export_saved_model(model, base).endswith(os.sep + "8")
    with pytest.raises(FileExistsError, match="Version 7 already exists"):
        export_saved_model(model, base, version=7)
    with pytest.raises(ValueError, match="non-negative integer"):
        export_saved_model(model, base, version="9")
    assert sorted(os.listdir(base)) == ["7", "8", "not-a-version"]


def test_failed_export_leaves_no_version_and_old_leftovers_are_cleaned(model, tmp_path, monkeypatch):
    base = tmp_path / "m"
    export_saved_model(model, base)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    os.makedirs(base / f".partial-{dead.pid}-2-abc")

    class CrashingArchive:
        def write_out(self, directory, **kwargs):
            with open(os.path.join(directory, "saved_model.pb"), "wb") as f:
                f.write(b"half a graph")
            raise KeyboardInterrupt

    monkeypatch.setattr(saved_model, "_export_archive", lambda model, signatures, truncate_dim: CrashingArchive())
    with pytest.raises(KeyboardInterrupt):
        export_saved_model(model, base)
    assert sorted(os.listdir(base)) == ["1"]


READ_ASSETS_IN_FRESH_PROCESS = """
import json, sys
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
version_dir = sys.argv[1]
logs = [prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in
        tf.data.TFRecordDataset(version_dir + "/assets.extra/tf_serving_warmup_requests")]
requests = [log.predict_log.request for log in logs]
texts = [[t.decode() for t in tf.make_ndarray(r.inputs["text"])] for r in requests]
names = [r.model_spec.signature_name for r in requests]
metadata = json.load(open(version_dir + "/assets.extra/keras_siamese.json"))
assert not any(m.startswith("keras_siamese") for m in sys.modules)
print(json.dumps({"texts": texts, "signatures": names, "metadata": metadata}))
"""


def test_export_writes_warmup_records_and_metadata_that_a_fresh_reader_parses(model, tmp_path):
    version_dir = export_saved_model(model, tmp_path / "m", warmup_texts=["a dog", "猫 🐈"],
                                     warmup_batch_sizes=[1, 3])
    result = subprocess.run([sys.executable, "-c", READ_ASSETS_IN_FRESH_PROCESS, version_dir],
                            check=True, capture_output=True, text=True)
    read = json.loads(result.stdout.strip().splitlines()[-1])
    assert read["texts"] == [["a dog"], ["a dog", "猫 🐈", "a dog"]]
    assert read["signatures"] == ["serving_default", "serving_default"]
    assert read["metadata"] == {
        "embedding_size": 8,
        "pooling": "mean",
        "normalized": True,
        "sequence_length": 24,
        "signatures": {"serving_default": "text"},
        "compute_dtype": "float32",
        "keras_siamese_version": keras_siamese.__version__,
        "tensorflow_version": tf.__version__,
    }


def test_without_warmup_texts_there_is_metadata_and_no_warmup_file(model, tmp_path):
    version_dir = export_saved_model(model, tmp_path / "m")
    assert os.listdir(os.path.join(version_dir, "assets.extra")) == ["keras_siamese.json"]


def _tokens(model, texts):
    return model.preprocessor(texts)


def test_token_signature_serves_the_text_signature_embeddings(model, tmp_path):
    version_dir = export_saved_model(model, tmp_path / "m", signatures=("text", "tokens"))
    loaded = tf.saved_model.load(version_dir)
    assert sorted(loaded.signatures) == ["serving_default", "tokens"]
    probe = tf.constant(PROBE_TEXTS + [b"\xff\xfe not utf-8"])
    from_text = loaded.signatures["serving_default"](text=probe)["embedding"].numpy()
    from_tokens = loaded.signatures["tokens"](**_tokens(model, probe))["embedding"].numpy()
    np.testing.assert_allclose(from_tokens, from_text, atol=1e-5)
    # Padded to the full sequence length (a client's fixed shape), the same vectors.
    full = _tokens(model, probe)
    pad = 24 - full["token_ids"].shape[1]
    full = {name: tf.pad(value, [[0, 0], [0, pad]]) for name, value in full.items()}
    np.testing.assert_allclose(loaded.signatures["tokens"](**full)["embedding"].numpy(), from_text, atol=1e-5)


RUN_WITHOUT_TF_TEXT = """
import sys
import numpy as np
import tensorflow as tf
tokens_dir, text_dir, tokens_path, out_path = sys.argv[1:]
loaded = tf.saved_model.load(tokens_dir)
assert sorted(loaded.signatures) == ["serving_default", "tokens"], list(loaded.signatures)
tokens = np.load(tokens_path)
out = loaded.signatures["serving_default"](**{name: tf.constant(tokens[name]) for name in tokens.files})
np.save(out_path, out["embedding"].numpy())
try:
    tf.saved_model.load(text_dir)
except Exception as error:
    print("text model refused:", str(error).splitlines()[0][:70])
assert not any(name.startswith(("tensorflow_text", "keras_hub", "keras_siamese")) for name in sys.modules)
"""


def test_token_only_export_needs_no_tf_text_op(model, tmp_path):
    text_dir = export_saved_model(model, tmp_path / "m")
    tokens_dir = export_saved_model(model, tmp_path / "m", signatures=("tokens",))
    assert set(ops.saved_model_ops(text_dir)) & set(ops.tf_text_ops())  # the text model needs TF Text
    assert ops.saved_model_ops(tokens_dir) <= ops.core_tensorflow_ops()
    np.savez(tmp_path / "tokens.npz", **{name: value.numpy() for name, value in _tokens(model, PROBE_TEXTS).items()})
    result = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_TF_TEXT, tokens_dir, text_dir, str(tmp_path / "tokens.npz"),
         str(tmp_path / "out.npy")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "text model refused: Op type not registered 'Sentencepiece" in result.stdout
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), model.predict(PROBE_TEXTS, verbose=0), atol=1e-5)
    metadata = json.loads((tmp_path / "m" / "2" / "assets.extra" / "keras_siamese.json").read_text())
    assert metadata["signatures"] == {"serving_default": "tokens", "tokens": "tokens"}


def test_op_check_refusal_leaves_no_version_behind(model, tmp_path, monkeypatch):
    base = tmp_path / "m"
    export_saved_model(model, base)
    used = ops.saved_model_ops(base / "1")
    assert "MatMul" in used
    # A server that lacks MatMul: the allowed set is our own logic, so it is what changes here.
    allowed = ops.core_tensorflow_ops() - {"MatMul"}
    monkeypatch.setattr(ops, "core_tensorflow_ops", lambda: allowed)
    with pytest.raises(UnsupportedOpsError, match=r"does not link: MatMul\."):
        export_saved_model(model, base, warmup_texts=["a dog"])
    assert sorted(os.listdir(base)) == ["1"]


def test_bad_export_options_are_value_errors(model, tmp_path):
    with pytest.raises(ValueError, match="signatures must name one or both"):
        export_saved_model(model, tmp_path / "m", signatures=("text", "ids"))
    with pytest.raises(ValueError, match="signatures must name one or both"):
        export_saved_model(model, tmp_path / "m", signatures=())
    with pytest.raises(ValueError, match="warmup_texts needs the text signature"):
        export_saved_model(model, tmp_path / "m", signatures="tokens", warmup_texts=["a dog"])
    with pytest.raises(ValueError, match="non-empty list"):
        export_saved_model(model, tmp_path / "m", warmup_texts=[])
    text = keras.Input(shape=(), dtype="string")
    hashed = keras.Model(text, L2Normalize()(keras.layers.Embedding(16, 4)(keras.layers.Hashing(16)(text))))
    with pytest.raises(ValueError, match="token signature needs a token-level model with a preprocessor"):
        export_saved_model(hashed, tmp_path / "m", signatures=("text", "tokens"))
    assert not os.path.exists(tmp_path / "m") or os.listdir(tmp_path / "m") == []


def test_the_text_signature_refuses_texts_of_another_rank_when_fed_as_tf_serving_feeds(model, tmp_path):
    """TF Serving feeds the signature's placeholder directly, whatever the tensor's shape."""
    import tensorflow_text  # noqa: F401  the SentencePiece ops

    version_dir = export_saved_model(model, tmp_path / "m")
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], version_dir)
        signature = meta_graph.signature_def["serving_default"]
        text, embedding = signature.inputs["text"].name, signature.outputs["embedding"].name
        assert session.run(embedding, {text: np.array([b"a dog", b"a cat"], object)}).shape == (2, 8)
        # Python's Session refuses a rank-2 feed itself; the C++ runtime does not check the
        # placeholder's shape. An input of unknown shape wired in its place is fed as C++ feeds
        # (the variables are shared by name within the session).
        any_shape = tf.compat.v1.placeholder(tf.string, shape=None)
        (fed_embedding,) = tf.graph_util.import_graph_def(
            meta_graph.graph_def, input_map={text: any_shape}, return_elements=[embedding], name="fed"
        )
        assert session.run(fed_embedding, {any_shape: np.array([b"a dog", b"a cat"], object)}).shape == (2, 8)
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[2,2\] is not compatible with expected shape \[\?\]"):
            session.run(fed_embedding, {any_shape: np.array([[b"a", b"b"], [b"c", b"d"]], object)})


def test_a_truncated_export_serves_the_renormalised_prefix_that_encode_and_predict_give(model, tmp_path):
    from keras_siamese.export.metadata import read_metadata
    from keras_siamese.inference import encode

    version_dir = export_saved_model(model, tmp_path / "m", truncate_dim=3, signatures=("text", "tokens"))
    loaded = tf.saved_model.load(version_dir)
    probe = tf.constant(PROBE_TEXTS)
    served = loaded.signatures["serving_default"](text=probe)["embedding"].numpy()
    from_tokens = loaded.signatures["tokens"](**_tokens(model, probe))["embedding"].numpy()
    full = model.predict(PROBE_TEXTS, verbose=0)
    oracle = full[:, :3] / np.linalg.norm(full[:, :3], axis=1, keepdims=True)
    assert served.shape == (len(PROBE_TEXTS), 3)
    np.testing.assert_allclose(served, oracle, atol=1e-5)
    np.testing.assert_allclose(from_tokens, oracle, atol=1e-5)
    np.testing.assert_allclose(encode(model, PROBE_TEXTS, truncate_dim=3), oracle, atol=1e-5)
    np.testing.assert_allclose(model.predict(PROBE_TEXTS, truncate_dim=3, verbose=0), oracle, atol=1e-5)
    assert model.predict([], truncate_dim=3).shape == (0, 3)
    metadata = read_metadata(version_dir)
    assert metadata["embedding_size"] == 3 and metadata["truncated_from"] == 8
    signature = loaded.signatures["serving_default"].structured_outputs["embedding"]
    assert signature.shape.as_list() == [None, 3]


@pytest.mark.parametrize("bad,words", [(0, "positive integer"), (-2, "positive integer"), (9, "larger than the embedding's 8")])
def test_bad_truncate_dims_are_refused_before_any_work(model, tmp_path, bad, words):
    from keras_siamese.inference import encode

    with pytest.raises(ValueError, match=words):
        export_saved_model(model, tmp_path / "m", truncate_dim=bad)
    assert not (tmp_path / "m").exists()
    with pytest.raises(ValueError, match=words):
        encode(model, ["a dog"], truncate_dim=bad)
    with pytest.raises(ValueError, match=words):
        model.predict(["a dog"], truncate_dim=bad)


def test_a_bfloat16_export_returns_float32_within_cosine_0_999_of_the_float32_export(model, glosses, tmp_path):
    float32_dir = export_saved_model(model, tmp_path / "serving")
    bfloat16_dir = export_saved_model(model, tmp_path / "serving", compute_dtype="bfloat16")
    texts = tf.constant(glosses[0][:300])
    float32 = tf.saved_model.load(float32_dir).signatures["serving_default"](text=texts)["embedding"]
    bfloat16 = tf.saved_model.load(bfloat16_dir).signatures["serving_default"](text=texts)["embedding"]
    assert bfloat16.dtype == tf.float32 and bfloat16.shape == float32.shape == (300, 8)
    assert np.sum(float32.numpy() * bfloat16.numpy(), axis=1).min() >= 0.999
    assert not np.array_equal(float32.numpy(), bfloat16.numpy())  # it did compute in bfloat16
    metadata = [read_metadata(path)["compute_dtype"] for path in (float32_dir, bfloat16_dir)]
    assert metadata == ["float32", "bfloat16"]
    # The model itself still computes in float32.
    np.testing.assert_allclose(model.predict(glosses[0][:300], verbose=0), float32.numpy(), atol=1e-5)


def _saved_variables(version_dir):
    """[(shape, dtype name)] of the variables a SavedModel's checkpoint holds, sorted."""
    reader = tf.train.load_checkpoint(os.path.join(version_dir, "variables", "variables"))
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    return sorted((tuple(shapes[key]), dtypes[key].name) for key in shapes if key.endswith("VARIABLE_VALUE"))


def test_exports_save_each_weight_once_and_bfloat16_stores_the_encoder_products_in_bfloat16(model, tmp_path):
    read_in_inference = [weight for weight in model.weights if weight.dtype == "float32"]
    float32 = _saved_variables(export_saved_model(model, tmp_path / "serving"))
    assert float32 == sorted((tuple(weight.shape), "float32") for weight in read_in_inference)
    bfloat16 = _saved_variables(export_saved_model(model, tmp_path / "serving", compute_dtype="bfloat16"))
    backbone = model.parts().encoder.backbone
    # Every token-level product and layer norm; the pooler (a [batch, hidden] product) keeps Keras' call.
    products = {id(weight): weight for layer in tf.train.TrackableView(backbone).descendants()
                if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.LayerNormalization))
                and layer.name != "pooled_dense" for weight in layer.weights}.values()
    assert sorted(shape for shape, _ in bfloat16) == sorted(shape for shape, _ in float32)
    assert sorted(shape for shape, dtype in bfloat16 if dtype == "bfloat16") == sorted(
        tuple(weight.shape) for weight in products)


@pytest.mark.parametrize("compute_dtype", ["int4", "float64", "mixed_bfloat16", 16])
def test_compute_dtypes_other_than_the_precisions_are_refused(model, tmp_path, compute_dtype):
    with pytest.raises(ValueError, match=r"compute_dtype must be one of \('float32', 'bfloat16', 'float16', 'int8'\)"):
        export_saved_model(model, tmp_path / "m", compute_dtype=compute_dtype)
    assert not os.path.exists(tmp_path / "m")


def _dense_model(**kwargs):
    x = keras.Input((2,))
    return TripletSemiHard(inputs=x, outputs=keras.layers.Dense(2)(x), **kwargs)


BAD_INPUT = {
    "text export of a float model": (lambda: export_saved_model(_dense_model(), scratch_dir()), ValueError,
                                     "takes float32 (None, 2) and has no preprocessor"),
    "token export of a float model": (lambda: export_saved_model(_dense_model(), scratch_dir(), signatures="tokens"),
                                      ValueError, "The token signature needs a token-level model with a preprocessor"),
    "unknown signature kind": (lambda: export_saved_model(_dense_model(), scratch_dir(), signatures=("ids",)),
                               ValueError, "signatures must name one or both of"),
    "warmup without the text signature": (lambda: export_saved_model(
        _dense_model(), scratch_dir(), signatures="tokens", warmup_texts=["a"]), ValueError,
        "warmup_texts needs the text signature"),
    "export computing in int4": (lambda: export_saved_model(_dense_model(), scratch_dir(), compute_dtype="int4"),
                                 ValueError, "compute_dtype must be one of ('float32', 'bfloat16', 'float16', 'int8'), "
                                 "got 'int4'"),
    "export in int8 without calibration texts": (
        lambda: export_saved_model(_dense_model(), scratch_dir(), compute_dtype="int8"), ValueError,
        "calibration_texts go with compute_dtype='int8', and int8 needs them"),
    "export version negative": (lambda: export_saved_model(_dense_model(), "/tmp/never", version=-1),
                                ValueError, "version must be a non-negative integer that fits TF Serving's int64, got -1"),
    "export version beyond int64": (lambda: export_saved_model(_dense_model(), "/tmp/never", version=2**63),
                                    ValueError, "fits TF Serving's int64, got 9223372036854775808"),
    # a damaged version directory: the error names the file and what is wrong
    "metadata truncated": (lambda: read_metadata(damaged_file("graph/1")), UnreadableFileError,
                           "keras_siamese.json is not a readable metadata file"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])


PROMPTED_IN_FRESH_PROCESS = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401
loaded = tf.saved_model.load(sys.argv[1])
texts = tf.constant(json.load(open(sys.argv[2])))
assert not any(m.startswith("keras_siamese") for m in sys.modules)
np.save(sys.argv[3], np.stack([loaded.signatures[name](text=texts)["embedding"].numpy()
                               for name in ("serving_default", "query", "document")]))
"""


def test_each_prompt_is_a_signature_that_adds_its_prefix_in_the_graph(tiny_encoder_factory, tmp_path):
    from keras_siamese.export import read_warmup_records
    from keras_siamese.models import SentenceEmbedder

    prompts = {"query": "query: ", "document": "passage: "}
    model = SentenceEmbedder.from_encoder(tiny_encoder_factory(), prompts=prompts)
    version_dir = export_saved_model(model, tmp_path / "m", warmup_texts=["a dog"], warmup_batch_sizes=[1, 2])
    metadata = read_metadata(version_dir)
    assert metadata["prompts"] == prompts
    assert metadata["signatures"] == {"serving_default": "text", "query": "text", "document": "text"}
    warmed = [log.predict_log.request.model_spec.signature_name for log in read_warmup_records(version_dir)]
    assert sorted(warmed) == sorted(["serving_default", "query", "document"] * 2)
    card = open(os.path.join(version_dir, "README.md"), encoding="utf-8").read()
    assert '"signature_name": "query"' in card and "curl" in card
    (tmp_path / "texts.json").write_text(json.dumps(PROBE_TEXTS))
    subprocess.run([sys.executable, "-c", PROMPTED_IN_FRESH_PROCESS, version_dir, str(tmp_path / "texts.json"),
                    str(tmp_path / "out.npy")], check=True)
    served = np.load(tmp_path / "out.npy")
    np.testing.assert_allclose(served[0], model.encode(PROBE_TEXTS), atol=1e-5)
    np.testing.assert_allclose(served[1], model.encode(PROBE_TEXTS, prompt_name="query"), atol=1e-5)
    np.testing.assert_allclose(served[2], model.encode(PROBE_TEXTS, prompt_name="document"), atol=1e-5)


@pytest.mark.needs_cxx
def test_tf_servings_loader_serves_the_query_signature_as_encode_does(tiny_encoder_factory, tmp_path):
    from keras_siamese.export import check_serving
    from keras_siamese.models import SentenceEmbedder

    model = SentenceEmbedder.from_encoder(tiny_encoder_factory(), prompts={"query": "query: "})
    version_dir = export_saved_model(model, tmp_path / "m", warmup_texts=["a dog"])
    report = check_serving(version_dir, PROBE_TEXTS, signature_name="query")
    np.testing.assert_allclose(report.embeddings, model.encode(PROBE_TEXTS, prompt_name="query"), atol=1e-5)
