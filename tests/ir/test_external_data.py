"""Models whose weights live in external files, including one over protobuf's 2 GiB cap."""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from irc.ir import Graph, Value, load, save
from irc.ir.onnx_io import INLINE_LIMIT
from irc.oracle import run


def _external_model(path):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 32)).astype(np.float32)
    b = rng.standard_normal((32,)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
        "ext", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 32])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.save_model(model, path, save_as_external_data=True, location="weights.bin",
                    size_threshold=64)
    return model


def test_external_data_is_lazy_and_written_back_as_external(tmp_path):
    src = tmp_path / "src" / "m.onnx"
    src.parent.mkdir()
    _external_model(src)
    before = (tmp_path / "src" / "weights.bin").read_bytes()
    g = load(src)
    w = g.initializers["w"].const
    assert w.is_external and w._array is None  # not read yet
    out = save(g, tmp_path / "dst" / "m.onnx")
    assert (tmp_path / "dst" / "m.onnx.data").exists()
    assert (tmp_path / "src" / "weights.bin").read_bytes() == before  # the user's file is untouched
    onnx.checker.check_model(str(out), full_check=True)
    x = np.random.default_rng(2).standard_normal((3, 64)).astype(np.float32)
    assert np.array_equal(run(src, {"x": x})["y"], run(out, {"x": x})["y"])
    reloaded = onnx.load(str(out), load_external_data=False)
    assert reloaded.graph.initializer[0].data_location == TensorProto.EXTERNAL


def test_model_over_2gb_round_trips(tmp_path):
    rows, cols = 2**31 // 4096 + 1024, 1024
    table = np.empty((rows, cols), np.float32)
    table[:] = (np.arange(rows, dtype=np.float32) % 251)[:, None]
    g = Graph("big")
    idx = g.add_input(Value("idx", TensorProto.INT64, (3,)))
    w = g.add_initializer("table", table)
    gather = g.add_op("Gather", [w, idx], name="lookup")
    y = gather.output()
    y.dtype, y.shape = TensorProto.FLOAT, (3, cols)
    g.outputs.append(y)
    assert table.nbytes > 2**31 > INLINE_LIMIT
    first = save(g, tmp_path / "a" / "big.onnx")  # over the cap: external data chosen
    assert os.path.getsize(first) < 1_000_000
    del table, g, w
    second = save(load(first), tmp_path / "b" / "big.onnx")
    onnx.checker.check_model(str(second), full_check=True)
    rows_wanted = np.array([0, 250, rows - 1], np.int64)
    got = run(second, {"idx": rows_wanted})[y.name]
    np.testing.assert_array_equal(got[:, 0], (rows_wanted % 251).astype(np.float32))
