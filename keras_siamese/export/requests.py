"""Client helpers for TensorFlow Serving: REST bodies and responses, gRPC PredictRequests.

REST (port 8501): `POST /v1/models/NAME[/versions/N]:predict` with a JSON body
in the row format (`"instances"`, one entry per text) or the columnar format
(`"inputs"`, one list per input). Texts that are not valid UTF-8 travel as
`{"b64": ...}`, which TF Serving decodes to bytes. Responses carry
`"predictions"` (row) or `"outputs"` (columnar), or `"error"`.
gRPC (port 8500): `PredictionService.Predict` with a `PredictRequest`
(needs `tensorflow-serving-api`, the `serving` extra).
"""

import base64

import numpy as np

SIGNATURE_NAME = "serving_default"
INPUT_NAME = "text"
OUTPUT_NAME = "embedding"
REST_FORMATS = ("instances", "inputs")


def rest_predict_url(model_name, host="localhost", port=8501, version=None):
    """The REST predict URL of `model_name` (the latest version unless `version` is given).

    Example:
    >>> rest_predict_url("wordnet", version=3)
    'http://localhost:8501/v1/models/wordnet/versions/3:predict'
    """
    version_part = "" if version is None else f"/versions/{int(version)}"
    return f"http://{host}:{port}/v1/models/{model_name}{version_part}:predict"


def rest_predict_body(texts, format="instances", signature_name=SIGNATURE_NAME, input_name=INPUT_NAME):
    """A JSON-serialisable REST predict body for `texts` in the row or columnar format.

    Example:
    >>> rest_predict_body(["a dog", b"\\xff"], format="inputs")
    {'signature_name': 'serving_default', 'inputs': {'text': ['a dog', {'b64': '/w=='}]}}
    >>> rest_predict_body(["a dog"])
    {'signature_name': 'serving_default', 'instances': [{'text': 'a dog'}]}
    """
    values = [_json_string(text) for text in _text_list(texts)]
    if format == "instances":
        return {"signature_name": signature_name, "instances": [{input_name: v} for v in values]}
    if format == "inputs":
        return {"signature_name": signature_name, "inputs": {input_name: values}}
    raise ValueError(f"format must be one of {REST_FORMATS}, got {format!r}.")


def parse_rest_response(body, output_name=OUTPUT_NAME):
    """The float32 `[batch, dim]` embeddings of a REST predict response (a parsed JSON dict).

    Accepts both response formats, with one output or several; raises
    `ValueError` with the server's message for `{"error": ...}` responses.

    Example:
    >>> parse_rest_response({"predictions": [[0.6, 0.8]]}).tolist()
    [[0.6000000238418579, 0.800000011920929]]
    >>> parse_rest_response({"outputs": {"embedding": [[1.0, 0.0]], "length": [2]}}).shape
    (1, 2)
    """
    if not isinstance(body, dict):
        raise ValueError(f"A TF Serving response is a JSON object, got {type(body).__name__}.")
    if "error" in body:
        raise ValueError(f"TF Serving answered with an error: {body['error']}")
    if "predictions" in body:
        rows = body["predictions"]
        if rows and isinstance(rows[0], dict):
            rows = [_named(row, output_name) for row in rows]
    elif "outputs" in body:
        rows = body["outputs"]
        if isinstance(rows, dict):
            rows = _named(rows, output_name)
    else:
        raise ValueError(f"Not a predict response (no 'predictions' or 'outputs'): {list(body)}.")
    embeddings = np.asarray(rows, dtype=np.float32)
    if embeddings.ndim != 2:
        raise ValueError(f"Expected [batch, dim] embeddings, got shape {embeddings.shape}.")
    return embeddings


def grpc_predict_request(
    texts, model_name, signature_name=SIGNATURE_NAME, input_name=INPUT_NAME, version=None
):
    """A `tensorflow.serving.PredictRequest` carrying `texts` as a `[batch]` string tensor.

    Example:
    >>> request = grpc_predict_request(["a dog"], "wordnet")
    >>> request.model_spec.signature_name, list(request.inputs["text"].string_val)
    ('serving_default', [b'a dog'])
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    texts = [as_bytes(text) for text in _text_list(texts)]
    request.inputs[input_name].CopyFrom(tf.make_tensor_proto(texts, dtype=tf.string, shape=[len(texts)]))
    return request


def parse_grpc_response(response, output_name=OUTPUT_NAME):
    """The float32 `[batch, dim]` output `output_name` of a `PredictResponse`.

    Example:
    >>> from tensorflow_serving.apis import predict_pb2
    >>> import tensorflow as tf
    >>> response = predict_pb2.PredictResponse()
    >>> response.outputs["embedding"].CopyFrom(tf.make_tensor_proto([[0.6, 0.8]], tf.float32))
    >>> parse_grpc_response(response).shape
    (1, 2)
    """
    import tensorflow as tf

    if output_name not in response.outputs:
        raise ValueError(f"No output {output_name!r} in the response; it has {sorted(response.outputs)}.")
    return tf.make_ndarray(response.outputs[output_name]).astype(np.float32)


def _text_list(texts):
    if isinstance(texts, (str, bytes)):
        raise ValueError("texts must be a list of strings, not one string.")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty; a predict request needs at least one text.")
    return texts


def as_bytes(text):
    """`text` as bytes: str is UTF-8 encoded, bytes are kept as they are.

    Example:
    >>> as_bytes("狗"), as_bytes(b"\\xff")
    (b'\\xe7\\x8b\\x97', b'\\xff')
    """
    if isinstance(text, (bytes, np.bytes_)):
        return bytes(text)
    if isinstance(text, str):
        return text.encode("utf-8")
    raise ValueError(f"texts must be str or bytes, got {type(text).__name__}: {text!r:.80}.")


def _json_string(text):
    """JSON strings are UTF-8: other bytes go base64-encoded in a {"b64": ...} object."""
    data = as_bytes(text)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(data).decode("ascii")}


def _named(outputs, output_name):
    if output_name not in outputs:
        raise ValueError(f"No output {output_name!r} in the response; it has {sorted(outputs)}.")
    return outputs[output_name]
