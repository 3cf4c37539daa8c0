import os

import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from keras_siamese.artifacts import UnreadableFileError
from keras_siamese.export.warmup import WARMUP_FILE, read_warmup_records, write_warmup_requests


class Identity(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        return {"length": tf.strings.length(text)}


@pytest.fixture
def version_dir(tmp_path):
    module = Identity()
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": module.serve})
    return str(tmp_path / "1")


def test_one_predict_request_per_batch_size_cycling_the_samples(version_dir):
    path = write_warmup_requests(version_dir, ["a dog", "猫 🐈", b"\xff raw"], batch_sizes=[1, 5])
    assert path == os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")
    logs = read_warmup_records(version_dir)
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log", "predict_log"]
    requests = [log.predict_log.request for log in logs]
    assert all(request.model_spec.signature_name == "serving_default" for request in requests)
    assert [list(tf.make_ndarray(r.inputs["text"])) for r in requests] == [
        [b"a dog"],
        [b"a dog", "猫 🐈".encode(), b"\xff raw", b"a dog", "猫 🐈".encode()],
    ]
    assert os.listdir(os.path.dirname(path)) == ["tf_serving_warmup_requests"]


def test_default_batch_sizes_are_one_and_all_samples(version_dir):
    write_warmup_requests(version_dir, ["a", "b", "c"], signature_name="s", input_name="q")
    logs = read_warmup_records(version_dir)
    shapes = [tf.make_ndarray(log.predict_log.request.inputs["q"]).shape for log in logs]
    assert shapes == [(1,), (3,)]
    assert {log.predict_log.request.model_spec.signature_name for log in logs} == {"s"}


def test_rewriting_replaces_the_file(version_dir):
    write_warmup_requests(version_dir, ["a"], batch_sizes=[1, 2, 3])
    write_warmup_requests(version_dir, ["a"], batch_sizes=[4])
    assert len(read_warmup_records(version_dir)) == 1


def test_reading_a_version_without_warmup_gives_no_records(version_dir):
    assert read_warmup_records(version_dir) == []


def test_damaged_warmup_files_are_unreadable_files_named_with_what_is_wrong(version_dir):
    path = write_warmup_requests(version_dir, ["a dog"], batch_sizes=[1, 2])
    whole = open(path, "rb").read()
    for damaged, reason in [
        (whole[:-5], "truncated record at"),
        (whole[:8] + bytes([whole[8] ^ 1]) + whole[9:], "corrupted record at 0"),
    ]:
        with open(path, "wb") as file:
            file.write(damaged)
        with pytest.raises(UnreadableFileError, match=f"tf_serving_warmup_requests is not a readable TF Serving "
                           f"warmup file: {reason}") as error:
            read_warmup_records(version_dir)
        assert "function_node" not in str(error.value) and "[Op:" not in str(error.value)
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(prediction_log_pb2.PredictionLog().SerializeToString())
        writer.write(b"\xff\xff not a PredictionLog")
    with pytest.raises(UnreadableFileError, match="record 2 is not a PredictionLog"):
        read_warmup_records(version_dir)


@pytest.mark.parametrize(
    "texts, batch_sizes, message",
    [
        ([], None, "non-empty list"),
        ("one string", None, "non-empty list"),
        (["a"], [0], "positive integers"),
        (["a"], [True], "positive integers"),
        (["a"], list(range(1, 1002)), "at most 1000"),
    ],
)
def test_bad_arguments_are_value_errors(version_dir, texts, batch_sizes, message):
    with pytest.raises(ValueError, match=message):
        write_warmup_requests(version_dir, texts, batch_sizes=batch_sizes)
    assert not os.path.exists(os.path.join(version_dir, WARMUP_FILE))


def test_refuses_a_directory_that_is_not_a_saved_model(tmp_path):
    with pytest.raises(ValueError, match="no saved_model.pb"):
        write_warmup_requests(tmp_path, ["a"])
