import os

import pytest
from tensorflow.core.protobuf import saved_model_pb2

from keras_siamese.artifacts import UnreadableFileError
from keras_siamese.export.ops import (
    UnsupportedOpsError,
    check_serving_ops,
    saved_model_ops,
    tf_text_op_libraries,
    tf_text_ops,
)
from tests.export.serving_models import (
    damaged_file,
    rename_op,
    save_pair_packing_model,
    sentencepiece_proto,
)
from tests.harness import check_bad_input


@pytest.fixture(scope="module")
def proto(glosses):
    return sentencepiece_proto(glosses[0][:300])


@pytest.fixture
def pair_model_dir(proto, tmp_path):
    save_pair_packing_model(tmp_path / "1", proto)
    return str(tmp_path / "1")


def _top_level_ops(saved_model_dir):
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as file:
        graph_def = saved_model_pb2.SavedModel.FromString(file.read()).meta_graphs[0].graph_def
    return {node.op for node in graph_def.node}


def test_scan_reaches_ops_that_live_only_inside_graph_functions(pair_model_dir):
    ops = saved_model_ops(pair_model_dir)
    inside_functions_only = {"TFText>RoundRobinTrim", "SentencepieceTokenizeOp", "ResourceGather", "Rsqrt"}
    assert inside_functions_only <= ops
    assert not inside_functions_only & _top_level_ops(pair_model_dir)
    # Calls of the graph's own functions are followed, not reported as ops.
    assert not any(op.startswith("__inference") for op in ops)


def test_core_and_tf_text_ops_pass(pair_model_dir):
    assert check_serving_ops(pair_model_dir) == frozenset(saved_model_ops(pair_model_dir))


def test_an_op_outside_core_and_tf_text_is_refused_by_name(pair_model_dir):
    assert rename_op(pair_model_dir, "Rsqrt", "Custom>FastRsqrt") > 0
    with pytest.raises(UnsupportedOpsError, match=r"does not link: Custom>FastRsqrt\.") as error:
        check_serving_ops(pair_model_dir)
    assert error.value.ops == ["Custom>FastRsqrt"]
    assert isinstance(error.value, ValueError)


def test_tf_text_ops_map_to_the_libraries_that_register_them():
    ops = tf_text_ops()
    libraries = tf_text_op_libraries()
    assert os.path.basename(ops["TFText>RoundRobinTrim"]) == "_trimmer_ops.so"
    assert os.path.basename(ops["SentencepieceTokenizeOp"]) == "_sentencepiece_tokenizer.so"
    assert set(ops.values()) <= set(libraries)
    assert all(os.path.isfile(path) for path in libraries)


def test_not_a_saved_model_or_wrong_tags_is_a_clear_value_error(pair_model_dir, tmp_path):
    with pytest.raises(ValueError, match="no saved_model.pb"):
        saved_model_ops(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"no meta graph tagged \['gpu', 'serve'\]"):
        saved_model_ops(pair_model_dir, tags=("serve", "gpu"))


BAD_INPUT = {
    "saved_model.pb corrupt": (lambda: check_serving_ops(damaged_file("graph/1")), UnreadableFileError,
                               "saved_model.pb is not a readable SavedModel graph (saved_model.pb): Error parsing"),
    "saved_model.pb empty": (lambda: check_serving_ops(damaged_file("empty_graph/1")), UnreadableFileError,
                             "saved_model.pb is not a readable SavedModel graph (saved_model.pb): it is empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(*BAD_INPUT[case])
