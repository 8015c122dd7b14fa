"""Option parsing and format detection: no framework needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from irc.errors import IrcError, ModelError
from irc.frontends import ImportOptions, InputSpec, detect, parse_input_shape
from irc.frontends.names import rename_io, reorder
from irc.ir import from_onnx


@pytest.mark.parametrize("text,expected", [
    ("x:2,3,224,224", InputSpec("x", (2, 3, 224, 224))),
    ("tokens:2,16:int64", InputSpec("tokens", (2, 16), "int64")),
    ("2,8", InputSpec(None, (2, 8))),
    ("x:?,8", InputSpec("x", (None, 8))),
    ("x:-1,8", InputSpec("x", (None, 8))),
    ("serving_default_x:0:2,3", None),
])
def test_parse_input_shape(text, expected):
    if expected is None:
        with pytest.raises(IrcError, match="expected NAME"):
            parse_input_shape(text)
    else:
        assert parse_input_shape(text) == expected
        assert parse_input_shape(text).np_dtype == np.dtype(expected.dtype or "float32")


def test_options_reject_duplicates_and_mixed_unnamed():
    with pytest.raises(IrcError, match="twice"):
        ImportOptions(input_shapes=["x:1,2", "x:3,4"])
    with pytest.raises(IrcError, match="only one"):
        ImportOptions(input_shapes=["1,2", "x:3,4"])
    with pytest.raises(IrcError, match="--opset"):
        ImportOptions(opset=3)
    options = ImportOptions(input_shapes={"x": (2, 3)})
    assert options.shape_for("x", 0, 1).shape == (2, 3) and options.target_opset == 18
    unnamed = ImportOptions(input_shapes=["2,3"])
    assert unnamed.shape_for("anything", 0, 1).shape == (2, 3)
    with pytest.raises(IrcError, match="name each"):
        unnamed.check_names(["a", "b"])


@pytest.mark.parametrize("name,framework", [
    ("m.onnx", "onnx"), ("m.keras", "tensorflow"), ("m.h5", "tensorflow"),
    ("m.tflite", "tensorflow"), ("m.pt2", "pytorch"),
])
def test_detect_by_suffix(tmp_path: Path, name, framework):
    (tmp_path / name).write_bytes(b"")
    assert detect(str(tmp_path / name)).framework == framework
    assert detect(str(tmp_path / name), "torch").framework == "pytorch"


def test_detect_saved_model_directory(tmp_path: Path):
    (tmp_path / "saved_model.pb").write_bytes(b"")
    assert detect(str(tmp_path)).framework == "tensorflow"
    with pytest.raises(ModelError, match="ambiguous"):
        detect(str(tmp_path / "saved_model.pb"))


def test_rename_io_moves_a_blocking_value_aside():
    """Renaming output 'Identity:0' to 'h' when an inner value is already called 'h'."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["h"]), helper.make_node("Neg", ["h"], ["Identity:0"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("Identity:0", TensorProto.FLOAT, [2])])
    ir = from_onnx(helper.make_model(graph))
    rename_io(ir, {"Identity:0": "h"})
    assert [v.name for v in ir.outputs] == ["h"]
    assert ir.producer(ir.outputs[0]).op_type == "Neg"
    assert ir.producer(ir.values["h_inner"]).op_type == "Relu"
    reorder(ir.inputs, ["x"])
    assert [v.name for v in ir.inputs] == ["x"]
