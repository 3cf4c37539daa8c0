"""TF Serving warmup records: requests the server replays before it serves a version.

TF Serving reads `<version>/assets.extra/tf_serving_warmup_requests`, a
TFRecord file of `tensorflow.serving.PredictionLog` protos (at most 1,000), and
runs each request once before marking the version available, so the first
real requests do not pay for graph optimisation and lazy initialisation.

Example:
>>> from keras_siamese.export.warmup import read_warmup_records, write_warmup_requests
>>> write_warmup_requests("serving/wordnet/1", ["a dog"], batch_sizes=[1, 4])  # doctest: +SKIP
'serving/wordnet/1/assets.extra/tf_serving_warmup_requests'
>>> len(read_warmup_records("serving/wordnet/1"))  # doctest: +SKIP
2
"""

import os
import re

from keras_siamese.artifacts import UnreadableFileError
from keras_siamese.atomic import atomic_file_path
from keras_siamese.checks import is_integer
from keras_siamese.export.requests import INPUT_NAME, SIGNATURE_NAME, grpc_predict_request

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving refuses more


def write_warmup_requests(
    version_dir,
    sample_texts,
    batch_sizes=None,
    signature_name=SIGNATURE_NAME,
    input_name=INPUT_NAME,
):
    """Writes warmup predict requests built from `sample_texts`; returns the file's path.

    One request per batch size, filled with `sample_texts` in order (repeated
    when the batch is larger), so each batch shape the server will see is
    compiled before it serves. The file is written atomically.

    Args:
        version_dir: the SavedModel version directory.
        sample_texts: representative texts (str or bytes).
        batch_sizes: batch sizes to warm up; default `(1, len(sample_texts))`.
            Match the server's `allowed_batch_sizes` when batching is on.
        signature_name: the signature the requests run, or a sequence of
            signatures (each gets a request of every batch size).
        input_name: the signature's string input.

    Example:
    >>> write_warmup_requests("serving/wordnet/1", ["a dog", "to run"])  # doctest: +SKIP
    'serving/wordnet/1/assets.extra/tf_serving_warmup_requests'
    """
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    if isinstance(sample_texts, (str, bytes)) or not list(sample_texts):
        raise ValueError("sample_texts must be a non-empty list of strings.")
    sample_texts = list(sample_texts)
    batch_sizes = sorted({1, len(sample_texts)}) if batch_sizes is None else list(batch_sizes)
    if not batch_sizes or not all(is_integer(size) and size >= 1 for size in batch_sizes):
        raise ValueError(f"batch_sizes must be positive integers, got {batch_sizes!r}.")
    names = (signature_name,) if isinstance(signature_name, str) else tuple(signature_name)
    if len(batch_sizes) * len(names) > MAX_WARMUP_RECORDS:
        raise ValueError(f"TF Serving replays at most {MAX_WARMUP_RECORDS} warmup requests, "
                         f"got {len(batch_sizes)} batch sizes for {len(names)} signature(s).")
    if not os.path.isfile(os.path.join(os.fspath(version_dir), "saved_model.pb")):
        raise ValueError(f"{version_dir} is not a SavedModel directory (no saved_model.pb).")
    path = os.path.join(os.fspath(version_dir), WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_file_path(path) as tmp, tf.io.TFRecordWriter(tmp) as writer:
        for name in names:
            for size in batch_sizes:
                texts = [sample_texts[i % len(sample_texts)] for i in range(size)]
                # The model name is left empty: the server fills in its own.
                request = grpc_predict_request(texts, "", name, input_name)
                log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
                writer.write(log.SerializeToString())
    return path


def read_warmup_records(version_dir):
    """The `tensorflow.serving.PredictionLog` records of `version_dir`'s warmup file, in order.

    The file is read with TensorFlow's record reader, the one TF Serving
    reads it with; a version without a warmup file has no records.

    Raises:
        UnreadableFileError: the file is truncated or corrupt, or a record is
            not a `PredictionLog`.

    Example:
    >>> logs = read_warmup_records("serving/wordnet/1")  # doctest: +SKIP
    >>> logs[0].predict_log.request.model_spec.signature_name  # doctest: +SKIP
    'serving_default'
    """
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(os.fspath(version_dir), WARMUP_FILE)
    if not os.path.isfile(path):
        return []
    records = []
    try:
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            records.append(prediction_log_pb2.PredictionLog.FromString(record))
    except tf.errors.DataLossError as error:
        # The reader's own words, without the dataset op TensorFlow wraps them in.
        reason = re.sub(r"^\{\{function_node [^}]*\}\}\s*|\s*\[Op:[^\]]*\][\s\S]*$", "", error.message)
        raise UnreadableFileError(path, "TF Serving warmup file", reason) from None
    except DecodeError as error:
        raise UnreadableFileError(
            path, "TF Serving warmup file", f"record {len(records) + 1} is not a PredictionLog ({error})"
        ) from None
    return records
