import base64
import json

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from keras_siamese.export.requests import (
    grpc_predict_request,
    parse_grpc_response,
    parse_rest_response,
    rest_predict_body,
    rest_predict_url,
)

TEXTS = ["a dog", "", "狗 🐕", b"\xff\xfe raw"]


def test_rest_url():
    assert rest_predict_url("m") == "http://localhost:8501/v1/models/m:predict"
    assert rest_predict_url("m", "srv", 9000, version=2) == "http://srv:9000/v1/models/m/versions/2:predict"


def test_row_format_body_is_one_object_per_text_with_b64_for_non_utf8():
    body = json.loads(json.dumps(rest_predict_body(TEXTS)))
    assert body == {
        "signature_name": "serving_default",
        "instances": [{"text": "a dog"}, {"text": ""}, {"text": "狗 🐕"},
                      {"text": {"b64": base64.b64encode(b"\xff\xfe raw").decode()}}],
    }


def test_columnar_body_is_one_list_per_input():
    body = rest_predict_body(TEXTS[:3], format="inputs", signature_name="ids", input_name="q")
    assert body == {"signature_name": "ids", "inputs": {"q": ["a dog", "", "狗 🐕"]}}


@pytest.mark.parametrize(
    "body",
    [
        {"predictions": [[0.6, 0.8], [1.0, 0.0]]},
        {"predictions": [{"embedding": [0.6, 0.8], "n": 1}, {"embedding": [1.0, 0.0], "n": 2}]},
        {"outputs": [[0.6, 0.8], [1.0, 0.0]]},
        {"outputs": {"embedding": [[0.6, 0.8], [1.0, 0.0]], "n": [1, 2]}},
    ],
)
def test_both_response_formats_parse_to_float32_rows(body):
    embeddings = parse_rest_response(json.loads(json.dumps(body)))
    assert embeddings.dtype == np.float32
    np.testing.assert_array_equal(embeddings, np.array([[0.6, 0.8], [1.0, 0.0]], np.float32))


@pytest.mark.parametrize(
    "body, message",
    [
        ({"error": "Op type not registered 'X'"}, "error: Op type not registered 'X'"),
        ({"outputs": {"scores": [[1.0]]}}, r"No output 'embedding'.*\['scores'\]"),
        ({"predictions": [1.0, 2.0]}, r"shape \(2,\)"),
        ({"result": []}, "Not a predict response"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_responses_are_value_errors(body, message):
    with pytest.raises(ValueError, match=message):
        parse_rest_response(body)


@pytest.mark.parametrize("texts", [[], "a dog", [3]])
def test_bad_texts_are_value_errors(texts):
    with pytest.raises(ValueError):
        rest_predict_body(texts)
    with pytest.raises(ValueError):
        grpc_predict_request(texts, "m")


def test_grpc_request_survives_the_wire_as_a_string_vector():
    request = grpc_predict_request(TEXTS, "wordnet", version=3)
    received = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert received.model_spec.name == "wordnet"
    assert received.model_spec.version.value == 3
    assert received.model_spec.signature_name == "serving_default"
    values = tf.make_ndarray(received.inputs["text"])
    assert values.shape == (4,)
    assert list(values) == [b"a dog", b"", "狗 🐕".encode(), b"\xff\xfe raw"]


def test_grpc_response_output_is_read_as_float32():
    response = predict_pb2.PredictResponse()
    response.outputs["embedding"].CopyFrom(tf.make_tensor_proto(np.eye(2, dtype=np.float64)))
    embeddings = parse_grpc_response(predict_pb2.PredictResponse.FromString(response.SerializeToString()))
    assert embeddings.dtype == np.float32
    np.testing.assert_array_equal(embeddings, np.eye(2))
    with pytest.raises(ValueError, match=r"No output 'vector'.*\['embedding'\]"):
        parse_grpc_response(response, output_name="vector")
