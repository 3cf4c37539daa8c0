"""Export for TensorFlow Serving: SavedModel versions, warmup, metadata, op check, serving check.

Example:
>>> from keras_siamese.export import rest_predict_body
>>> rest_predict_body(["a dog"], format="inputs")
{'signature_name': 'serving_default', 'inputs': {'text': ['a dog']}}
"""

from keras_siamese.export.metadata import describe_model, read_metadata, write_metadata
from keras_siamese.export.ops import UnsupportedOpsError, check_serving_ops, saved_model_ops
from keras_siamese.export.requests import (
    grpc_predict_request,
    parse_grpc_response,
    parse_rest_response,
    rest_predict_body,
    rest_predict_url,
)
from keras_siamese.export.model_card import write_model_card
from keras_siamese.export.saved_model import export_saved_model
from keras_siamese.export.sentence_transformers import export_sentence_transformers
from keras_siamese.export.versions import next_version, write_version
from keras_siamese.export.serving_check import (
    ServingCheckReport,
    ServingLoad,
    ServingLoadReport,
    check_serving,
)
from keras_siamese.export.serving_check_build import build_serving_check
from keras_siamese.export.serving_check_errors import (
    ServingCheckBuildError,
    ServingCheckConcurrencyError,
    ServingCheckError,
    ServingCheckLoadError,
    ServingCheckRunError,
    ServingCheckTimeoutError,
    ServingCheckWarmupError,
)
from keras_siamese.export.warmup import read_warmup_records, write_warmup_requests

__all__ = [
    "ServingCheckBuildError",
    "ServingCheckConcurrencyError",
    "ServingCheckError",
    "ServingCheckLoadError",
    "ServingCheckReport",
    "ServingCheckRunError",
    "ServingCheckTimeoutError",
    "ServingCheckWarmupError",
    "ServingLoad",
    "ServingLoadReport",
    "UnsupportedOpsError",
    "build_serving_check",
    "check_serving",
    "check_serving_ops",
    "describe_model",
    "export_saved_model",
    "export_sentence_transformers",
    "grpc_predict_request",
    "next_version",
    "write_version",
    "parse_grpc_response",
    "parse_rest_response",
    "read_metadata",
    "read_warmup_records",
    "rest_predict_body",
    "rest_predict_url",
    "saved_model_ops",
    "write_metadata",
    "write_model_card",
    "write_warmup_requests",
]
