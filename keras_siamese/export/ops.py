"""Which ops a SavedModel uses, and whether TensorFlow Serving (>= 2.20) links them all.

TF Serving links core TensorFlow and TF Text's op library; anything else
(a custom op, an op of another add-on package) makes the model fail to load
with "Op type not registered". The scan covers the top-level graph and every
graph function in its library, which `saved_model_cli show --list_ops` misses.
"""

import functools
import glob
import inspect
import os

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from keras_siamese.artifacts import reading
from keras_siamese.quantization import INT8_MATMUL_OP

# TF Serving's default tag set.
SERVE_TAG = "serve"


class UnsupportedOpsError(ValueError):
    """A SavedModel uses ops that TensorFlow Serving does not link."""

    def __init__(self, saved_model_dir, ops):
        self.ops = sorted(ops)
        super().__init__(
            f"{saved_model_dir} uses ops that TensorFlow Serving (>= 2.20) does not link: "
            f"{', '.join(self.ops)}. Only core TensorFlow ops and TF Text's ops are "
            "available; remove these ops from the serving graph or build a model "
            "server that links them."
        )


def saved_model_ops(saved_model_dir, tags=(SERVE_TAG,)):
    """The op types used by the meta graph tagged `tags`, graph functions included.

    Calls of the graph's own functions are followed into those functions and
    not counted as ops.

    Example:
    >>> sorted(saved_model_ops("serving/wordnet/1"))[:3]  # doctest: +SKIP
    ['Add', 'AddV2', 'Any']
    """
    graph_def = _meta_graph(saved_model_dir, tags).graph_def
    functions = {function.signature.name for function in graph_def.library.function}
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops.update(node.op for node in function.node_def)
    return ops - functions


def check_serving_ops(saved_model_dir, tags=(SERVE_TAG,)):
    """Raises `UnsupportedOpsError` naming the ops TF Serving lacks; returns the ops used.

    Allowed: core TensorFlow ops (those with a `tf.raw_ops` entry), the ops
    of TF Text's op libraries, which TF Serving links since 2.20, and oneDNN's
    int8 matrix product of `keras_siamese.quantization` (TF Serving's oneDNN
    CPU builds of the same TensorFlow version have it).

    Example:
    >>> check_serving_ops("serving/wordnet/1")  # doctest: +SKIP
    frozenset({'Const', 'SentencepieceTokenizeOp', ...})
    """
    ops = saved_model_ops(saved_model_dir, tags)
    linked = core_tensorflow_ops() | {_python_name(op) for op in tf_text_ops()} | {INT8_MATMUL_OP}
    unsupported = {op for op in ops if _python_name(op) not in linked}
    if unsupported:
        raise UnsupportedOpsError(saved_model_dir, unsupported)
    return frozenset(ops)


@functools.cache
def core_tensorflow_ops():
    """Names of core TensorFlow's ops: those with a `tf.raw_ops` wrapper."""
    return frozenset(name for name in dir(tf.raw_ops) if name[:1].isupper())


def tf_text_op_libraries():
    """Paths of TF Text's op libraries (the `.so` files TF Serving links the ops of).

    Example:
    >>> any(path.endswith("_sentencepiece_tokenizer.so") for path in tf_text_op_libraries())
    True
    """
    import tensorflow_text

    ops_dir = os.path.join(os.path.dirname(tensorflow_text.__file__), "python", "ops")
    libraries = sorted(glob.glob(os.path.join(ops_dir, "_*.so")))
    if not libraries:
        raise FileNotFoundError(f"No TF Text op libraries (_*.so) in {ops_dir}.")
    return libraries


@functools.cache
def tf_text_ops():
    """{op name: library path} for every op TF Text's libraries register.

    Read from the op wrappers `tf.load_op_library` generates for each library:
    one function per op, named as the op with `>` written `_` (TF Text's op
    names have no `_` of their own, so the names map back exactly).

    Example:
    >>> tf_text_ops()["TFText>RoundRobinTrim"].endswith("_trimmer_ops.so")
    True
    """
    ops = {}
    for library in tf_text_op_libraries():
        wrappers = tf.load_op_library(library)
        for name in dir(wrappers):
            if name[:1].isupper() and inspect.isfunction(getattr(wrappers, name)):
                ops[name.replace("_", ">")] = library
    return ops


def _python_name(op):
    """How an op's generated wrapper spells its name (`TFText>RoundRobinTrim` -> `TFText_RoundRobinTrim`)."""
    return op.replace(">", "_")


def _meta_graph(saved_model_dir, tags):
    path = os.path.join(os.fspath(saved_model_dir), "saved_model.pb")
    if not os.path.isfile(path):
        raise ValueError(f"{saved_model_dir} is not a SavedModel directory (no saved_model.pb).")
    with reading(path, "SavedModel graph (saved_model.pb)"), open(path, "rb") as file:
        saved_model = saved_model_pb2.SavedModel.FromString(file.read())
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == set(tags):
            return meta_graph
    found = [sorted(meta_graph.meta_info_def.tags) for meta_graph in saved_model.meta_graphs]
    raise ValueError(f"{saved_model_dir} has no meta graph tagged {sorted(tags)}; found {found}.")
