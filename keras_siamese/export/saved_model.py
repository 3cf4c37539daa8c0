"""SavedModel export in TensorFlow Serving's layout, written atomically."""

import contextlib
import functools
import os

import keras
import tensorflow as tf

from keras_siamese.export.metadata import describe_model, write_metadata
from keras_siamese.export.model_card import write_model_card
from keras_siamese.export.ops import check_serving_ops
from keras_siamese.export.requests import INPUT_NAME, OUTPUT_NAME, SIGNATURE_NAME
from keras_siamese.export.versions import check_version, write_version
from keras_siamese.export.warmup import write_warmup_requests
from keras_siamese.layers.fusion import weights_stored_as
from keras_siamese.losses.matryoshka import check_truncate_dim, truncate_embeddings
from keras_siamese.precision import SERVING_PRECISIONS, check_precision, computing_in
from keras_siamese.quantization import calibrate_int8, int8_matmuls

TOKEN_SIGNATURE_NAME = "tokens"
SIGNATURE_KINDS = ("text", "tokens")


def export_saved_model(
    model, base_dir, version=None, *, warmup_texts=None, warmup_batch_sizes=None, signatures=("text",),
    truncate_dim=None, compute_dtype=None, calibration_texts=None, metadata=None,
):
    """Exports `model` (strings -> embeddings) as `base_dir/<version>/` for TF Serving.

    The SavedModel's `serving_default` signature takes `text`, a `[batch]`
    tf.string tensor, and returns `embedding`, float32 `[batch, dim]`: the
    model's `preprocessor` (strings -> tokens) and the model, or a strings-in
    model alone. With `"tokens"` in `signatures`, a `tokens` signature takes
    the token model's inputs (`token_ids` and `padding_mask`, int32
    `[batch, length]`, as its preprocessor packs them) and returns the same
    `embedding`. Exported with `signatures=("tokens",)` alone, the tokenizer
    is left out and the model needs no TF Text op, for model servers built
    without TF Text; `serving_default` is then the token signature.

    A model with `prompts` (`SentenceEmbedder(prompts={"query": "query: "})`)
    gets a text signature per prompt, named after it, that adds the prefix in
    the graph: a client calling `query` cannot forget it.

    Every version carries `assets.extra/keras_siamese.json` (embedding size,
    pooling, normalisation, sequence length, signatures, prompts, versions), a
    model card (`README.md`, with the facts of `metadata`) and, given
    `warmup_texts`, TF Serving's warmup records for every text signature. Before the version appears,
    its ops are checked against what TF Serving links
    (`keras_siamese.export.ops.check_serving_ops`): a refused model raises
    `UnsupportedOpsError` and leaves no version behind.

    The version directory is written under a hidden temporary name inside
    `base_dir` and renamed into place only when complete, so a server watching
    `base_dir` never loads a half-written version and earlier versions are
    never touched. Leftovers of exports that were killed are removed by the
    next export.

    Args:
        model: a token-level Keras model with a `preprocessor`
            (`SentenceEmbedder.from_encoder`, a keras-hub `TextEmbedder`), or
            a Keras model mapping a `[batch]` string tensor to embeddings.
        base_dir: the model's base path (TF Serving's `base_path`).
        version: integer version; by default one more than the largest
            existing version (1 for an empty `base_dir`). An existing version
            is never overwritten.
        warmup_texts: sample texts for `assets.extra/tf_serving_warmup_requests`
            (needs the text signature); None writes no warmup file.
        warmup_batch_sizes: batch sizes of the warmup requests (see
            `keras_siamese.export.warmup.write_warmup_requests`).
        signatures: which of `"text"` and `"tokens"` to export. The token
            signature needs a token-level model with a preprocessor.
        truncate_dim: serve the first `truncate_dim` dimensions of each
            embedding, L2-normalised again (`[batch, truncate_dim]`; a model
            trained with `keras_siamese.losses.MatryoshkaLoss`), equal to
            `keras_siamese.inference.encode(model, texts, truncate_dim=...)`.
            The metadata's `embedding_size` is then `truncate_dim`.
        compute_dtype: `"float32"`, `"bfloat16"` or `"float16"`: the dtype the
            served graph computes in (the encoder's matrix products and layer
            norms read weights stored in it); None keeps the model's own. The
            signature still returns float32 embeddings
            (`Pooling` on computes in float32); the metadata's
            `compute_dtype` says which. bfloat16 serves faster on CPUs with
            bfloat16 instructions and GPUs (benchmarks/README.md). `"int8"`:
            the encoder's matrix products in int8 through oneDNN, calibrated
            on `calibration_texts`, the rest in float32
            (`keras_siamese.quantization`); such a version must be served by
            the TensorFlow Serving version it names in its metadata, built with
            oneDNN (the official CPU builds are).
        calibration_texts: for `compute_dtype="int8"` (required there): a few
            hundred texts like those the model will serve.
        metadata: more facts for `assets.extra/keras_siamese.json`, a dict of
            JSON values (the main job adds its held-out metrics and, for
            pairs scored 0/1, the best-F1 duplicate threshold).

    Returns:
        The path of the new version directory.

    Example:
    >>> path = export_saved_model(model, "serving/wordnet",
    ...                           warmup_texts=["a small dog"])  # doctest: +SKIP
    >>> tf.saved_model.load(path).signatures["serving_default"](
    ...     text=tf.constant(["a small dog"]))["embedding"]  # doctest: +SKIP
    """
    signatures = _check_signatures(signatures)
    if compute_dtype is not None:
        check_precision(compute_dtype, "compute_dtype", SERVING_PRECISIONS)
    if (compute_dtype == "int8") != (calibration_texts is not None):
        raise ValueError("calibration_texts go with compute_dtype='int8', and int8 needs them"
                         f" (got compute_dtype={compute_dtype!r}).")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict of JSON values, got {type(metadata).__name__}.")
    facts = dict(metadata or {})
    metadata = {**facts, **_export_metadata(model, signatures, truncate_dim, compute_dtype)}
    if version is not None:
        check_version(version)
    if warmup_texts is not None and "text" not in signatures:
        raise ValueError("warmup_texts needs the text signature; add 'text' to signatures.")
    int8 = contextlib.nullcontext()
    if compute_dtype == "int8":
        calibration = calibrate_int8(model, calibration_texts)
        metadata["int8"] = calibration.describe()
        int8 = int8_matmuls(model, calibration)
    # The signatures are traced here and again as they are written (TensorFlow's save context), both
    # times in the dtype they serve in, reading the weights stored in it.
    with _computing_in(model, compute_dtype), _weights_stored_as(model, compute_dtype) as copies, int8:
        archive = _export_archive(model, signatures, truncate_dim)
        if copies is not None:
            archive.track(copies)
        write = functools.partial(_write_saved_model, model=model, archive=archive, metadata=metadata, facts=facts,
                                  warmup_texts=warmup_texts, warmup_batch_sizes=warmup_batch_sizes)
        return write_version(os.fspath(base_dir), version, write)


def _computing_in(model, compute_dtype):
    """The model's layers computing in `compute_dtype` (int8: float32 around the int8 products)."""
    if compute_dtype is None:
        return contextlib.nullcontext()
    return computing_in(model, "float32" if compute_dtype == "int8" else compute_dtype)


def _weights_stored_as(model, compute_dtype):
    """bfloat16 / float16: the fused layers' weights as copies in that dtype (no cast per call)."""
    if compute_dtype not in ("bfloat16", "float16"):
        return contextlib.nullcontext()
    return weights_stored_as(model, compute_dtype)


def _export_metadata(model, signatures, truncate_dim, compute_dtype):
    """What `assets.extra/keras_siamese.json` says: `describe_model`'s description, with the
    embedding size served, the signatures and the dtype the graph computes in."""
    description = describe_model(model)
    if truncate_dim is not None:
        check_truncate_dim(truncate_dim, description["embedding_size"])
        description = {**description, "embedding_size": truncate_dim, "truncated_from": description["embedding_size"]}
    prompts = {"prompts": _prompts(model)} if _prompts(model) else {}
    return {**description, "signatures": _signature_names(signatures, _prompts(model)), **prompts,
            "compute_dtype": compute_dtype or model.compute_dtype}


def _write_saved_model(directory, *, model, archive, metadata, facts, warmup_texts, warmup_batch_sizes):
    """Writes the SavedModel, refuses ops TF Serving does not link, then adds the metadata, the model
    card and the warmup records (given `warmup_texts`, for every text signature) to `directory`."""
    archive.write_out(directory, verbose=False)
    check_serving_ops(directory)
    write_metadata(directory, metadata)
    text_signatures = tuple(name for name, kind in metadata["signatures"].items() if kind == "text")
    write_model_card(directory, model, _serving_usage(metadata["signatures"]), facts)
    if warmup_texts is not None:
        write_warmup_requests(directory, warmup_texts, warmup_batch_sizes, signature_name=text_signatures)


def _export_archive(model, signatures, truncate_dim):
    """The text signature runs the model's preprocessor, then the model; the token signature the model."""
    preprocessor = getattr(model, "preprocessor", None)

    def embed(inputs):
        embedding = model(inputs, training=False)
        return tf.cast(embedding, tf.float32) if truncate_dim is None else truncate_embeddings(embedding, truncate_dim)

    archive = keras.export.ExportArchive()
    if "text" in signatures:
        if preprocessor is None:
            _check_takes_texts(model)
        archive.track(model if preprocessor is None else _tokenizer_resources(preprocessor))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)])
        def serve(text):
            inputs = text if preprocessor is None else preprocessor(text)
            return {OUTPUT_NAME: embed(inputs)}

        archive.add_endpoint(SIGNATURE_NAME, serve)
        for name, prefix in _prompts(model).items():
            archive.add_endpoint(name, _prompted(serve, prefix))
    if "tokens" in signatures:
        names = _token_input_names(model, preprocessor)
        specs = [tf.TensorSpec([None, None], tf.int32, name=name) for name in names]

        @tf.function(input_signature=specs)
        def serve_tokens(*tokens):
            return {OUTPUT_NAME: embed(dict(zip(names, tokens)))}

        for name, kind in _signature_names(signatures).items():
            if kind == "tokens":
                archive.add_endpoint(name, serve_tokens)
    return archive


def _tokenizer_resources(preprocessor):
    """The preprocessor's tables and assets, for the archive to save. The variables the signatures
    read are saved by `add_endpoint`; tracking the model itself would save each weight twice, and
    also those the signatures do not read (the float32 kernels of a bfloat16 or int8 export)."""
    resources = tf.Module(name="text_preprocessing")
    resources.preprocessor = preprocessor
    return resources


def _token_input_names(model, preprocessor):
    """The names of the token model's inputs (`token_ids`, `padding_mask`, ...)."""
    inputs = getattr(model, "input", None)
    if preprocessor is None or not isinstance(inputs, dict):
        raise ValueError(
            "The token signature needs a token-level model with a preprocessor, such as "
            "SentenceEmbedder.from_encoder(...) or a keras-hub TextEmbedder; "
            f"{getattr(model, 'name', model)!r} takes strings."
        )
    return sorted(inputs)


def _check_takes_texts(model):
    """A model without a preprocessor serves the text signature only if it takes one string tensor."""
    inputs = getattr(model, "inputs", None) or []  # a subclassed model may declare none: it is traced
    if inputs and (len(inputs) != 1 or inputs[0].dtype != "string"):
        described = ", ".join(f"{tensor.dtype} {tuple(tensor.shape)}" for tensor in inputs)
        raise ValueError(
            f"The text signature feeds a [batch] string tensor, but {getattr(model, 'name', model)!r} "
            f"takes {described} and has no preprocessor to make its inputs from texts; export a model "
            "that takes strings, or a token model with a preprocessor (SentenceEmbedder.from_encoder)."
        )


def _prompted(serve, prefix):
    """A text signature that prefixes every text with `prefix`, then serves it as `serve` does."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)])
    def serve_prompted(text):
        return serve(tf.strings.join([prefix, text]))

    return serve_prompted


def _prompts(model):
    """The model's prompts ({} for none)."""
    return dict(getattr(model, "prompts", None) or {})


def _signature_names(signatures, prompts=()):
    """{signature name: kind}; `serving_default` is the text signature when there is one, and each
    prompt names a text signature of its own."""
    names = {SIGNATURE_NAME: "text" if "text" in signatures else "tokens"}
    if "tokens" in signatures:
        names[TOKEN_SIGNATURE_NAME] = "tokens"
    if "text" in signatures:
        names.update({name: "text" for name in prompts})
    return names


def _serving_usage(signatures):
    """The model card's TF Serving section: one request per text signature."""
    lines = ["Serve this version directory's parent with TensorFlow Serving, then:", "", "```bash"]
    for name, kind in signatures.items():
        if kind == "text":
            lines.append(f"curl -d '{{\"signature_name\": \"{name}\", \"instances\": [\"a text\"]}}' "
                         "http://localhost:8501/v1/models/MODEL:predict")
    return "\n".join(lines + ["```"])


def _check_signatures(signatures):
    if isinstance(signatures, str):
        signatures = (signatures,)
    signatures = tuple(signatures)
    if not signatures or not set(signatures) <= set(SIGNATURE_KINDS) or len(set(signatures)) != len(signatures):
        raise ValueError(f"signatures must name one or both of {SIGNATURE_KINDS}, got {signatures!r}.")
    return signatures
