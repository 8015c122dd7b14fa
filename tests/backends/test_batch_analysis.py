"""The batch-separability analysis (irc/backends/rust/batch.py) on small graphs: what it
splits, on which axes, and what it must refuse."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from irc.backends.rust.batch import batch_split
from irc.backends.rust.prepare import prepare
from irc.ir.onnx_io import from_onnx

F = TP.FLOAT
RNG = np.random.default_rng(3)


def _model(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _split(model, level=3):
    return batch_split(prepare(from_onnx(model), level=level))


def _w(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _i64(*values):
    return np.array(values, np.int64)


N = helper.make_node


# -- separable (also run by test_batch_split.py) -------------------------------------------------
def cnn_model():
    return _model([N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), N("Relu", ["c"], ["r"]),
                   N("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
                   N("Flatten", ["p"], ["f"]), N("Gemm", ["f", "fw", "fb"], ["y"], transB=1)],
                  [("x", F, ["N", 3, 8, 8])], [("y", F)],
                  [("w", _w(4, 3, 3, 3)), ("b", _w(4)), ("fw", _w(5, 64)), ("fb", _w(5))])


def test_cnn_is_split_on_axis_0():
    s = _split(cnn_model())
    assert s is not None and s.symbol == "N" and s.inputs == {"x": 0} and s.outputs == [0]


def transformer_model():
    # Reshape to heads through a shape computed from the input (Shape -> Gather -> Concat),
    # a batched MatMul (both sides carry the batch), Softmax and LayerNorm over the last axis.
    nodes = [
        N("MatMul", ["x", "wq"], ["q"]),
        N("Shape", ["x"], ["sh"]), N("Gather", ["sh", "zero"], ["n"], axis=0),
        N("Unsqueeze", ["n", "ax0"], ["n1"]), N("Concat", ["n1", "rest"], ["shape"], axis=0),
        N("Reshape", ["q", "shape"], ["q4"]), N("Transpose", ["q4"], ["qh"], perm=[0, 2, 1, 3]),
        N("Transpose", ["q4"], ["kt"], perm=[0, 2, 3, 1]),
        N("MatMul", ["qh", "kt"], ["s"]), N("Softmax", ["s"], ["p"], axis=-1),
        N("MatMul", ["p", "qh"], ["o"]), N("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
        N("Reshape", ["ot", "flat"], ["o3"]), N("Add", ["o3", "x"], ["res"]),
        N("LayerNormalization", ["res", "g", "bb"], ["y"], axis=-1),
    ]
    return _model(nodes, [("x", F, ["B", 6, 8])], [("y", F)],
                  [("wq", _w(8, 8)), ("zero", np.array(0, np.int64)), ("ax0", _i64(0)), ("rest", _i64(6, 2, 4)),
                   ("flat", _i64(0, 6, 8)), ("g", _w(8)), ("bb", _w(8))])


def test_transformer_block_shape_subgraph_and_transposes():
    s = _split(transformer_model(), level=0)
    assert s is not None and s.inputs == {"x": 0} and s.outputs == [0]


def lstm_model():
    x = helper.make_tensor_value_info("x", F, [5, "N", 3])
    g = helper.make_graph(
        [N("LSTM", ["x", "w", "r"], ["yy", "yh"], hidden_size=4)], "m", [x],
        [helper.make_tensor_value_info("yy", F, None), helper.make_tensor_value_info("yh", F, None)],
        [numpy_helper.from_array(_w(1, 16, 3), "w"), numpy_helper.from_array(_w(1, 16, 4), "r")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_lstm_batch_axis_1_and_output_axes():
    s = _split(lstm_model())
    assert s is not None and s.inputs == {"x": 1} and s.outputs == [2, 1]


def unsplit_input_model():
    return _model([N("Add", ["x", "bias"], ["h"]), N("Tanh", ["h"], ["y"])], [("x", F, ["N", 4]), ("bias", F, [4])],
                  [("y", F)])


def test_input_without_batch_is_passed_whole():
    s = _split(unsplit_input_model())
    assert s is not None and s.inputs == {"x": 0}


def test_reduce_not_over_batch_and_keepdims():
    m = _model([N("ReduceSum", ["x", "ax"], ["y"], keepdims=0)], [("x", F, [3, "N", 4])], [("y", F)],
               [("ax", _i64(2))])
    s = _split(m)
    assert s is not None and s.inputs == {"x": 1} and s.outputs == [1]


# -- not separable ----------------------------------------------------------------------------
NOT_SEPARABLE = {
    "reduce_over_batch": _model([N("ReduceSum", ["x", "ax"], ["y"], keepdims=1)], [("x", F, ["N", 4])],
                                [("y", F)], [("ax", _i64(0))]),
    "reduce_all": _model([N("ReduceMean", ["x"], ["y"], keepdims=0)], [("x", F, ["N", 4])], [("y", F)]),
    "matmul_mixing_samples": _model([N("Transpose", ["x"], ["xt"], perm=[1, 0]), N("MatMul", ["x", "xt"], ["y"])],
                                    [("x", F, ["N", 4])], [("y", F)]),  # the Gram matrix x x^T
    "matmul_contracting_batch": _model([N("MatMul", ["xt", "x"], ["y"]), ],
                                       [("xt", F, [4, "N"]), ("x", F, ["N", 4])], [("y", F)]),
    "reshape_folding_batch": _model([N("Reshape", ["x", "s"], ["y"])], [("x", F, ["N", 4])], [("y", F)],
                                    [("s", _i64(-1))]),
    "reshape_batch_into_other_axis": _model([N("Reshape", ["x", "s"], ["y"])], [("x", F, ["N", 4])], [("y", F)],
                                            [("s", _i64(2, -1))]),
    "gather_on_batch_axis": _model([N("Gather", ["x", "i"], ["y"], axis=0)], [("x", F, ["N", 4])], [("y", F)],
                                   [("i", _i64(0, 1))]),
    "softmax_over_batch": _model([N("Softmax", ["x"], ["y"], axis=0)], [("x", F, ["N", 4])], [("y", F)]),
    "batchnorm_training": _model(
        [N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"], training_mode=1)],
        [("x", F, ["N", 3, 4, 4])], [("y", F)],
        [("s", _w(3)), ("b", _w(3)), ("m", _w(3)), ("v", np.abs(_w(3)) + 1)]),
    "concat_along_batch": _model([N("Concat", ["x", "x"], ["y"], axis=0)], [("x", F, ["N", 4])], [("y", F)]),
    "slice_of_batch": _model([N("Slice", ["x", "st", "en", "ax"], ["y"])], [("x", F, ["N", 4])], [("y", F)],
                             [("st", _i64(1)), ("en", _i64(1 << 40)), ("ax", _i64(0))]),
    "shape_as_data": _model([N("Shape", ["x"], ["s"]), N("Cast", ["s"], ["sf"], to=F),
                             N("Div", ["x", "sf"], ["y"])], [("x", F, ["N"])], [("y", F)]),
    "transpose_batch_to_inner": _model([N("Transpose", ["x"], ["t"], perm=[1, 0]), N("Softmax", ["t"], ["y"])],
                                       [("x", F, ["N", 4])], [("y", F)]),
    "static_batch": _model([N("Relu", ["x"], ["y"])], [("x", F, [8, 4])], [("y", F)]),
    "unknown_op": _model([N("NonZero", ["x"], ["y"])], [("x", F, ["N", 4])], [("y", TP.INT64)]),
    "squeeze_without_axes": _model([N("Squeeze", ["x"], ["y"])], [("x", F, ["N", 1, 4])], [("y", F)]),
    "batch_weight_broadcast": _model([N("Add", ["x", "c"], ["y"])], [("x", F, ["N", 4])], [("y", F)],
                                     [("c", _w(2, 4))]),
}


@pytest.mark.parametrize("key", sorted(NOT_SEPARABLE))
def test_not_separable(key):
    assert _split(NOT_SEPARABLE[key], level=0) is None


def test_batchnorm_inference_is_separable():
    m = _model([N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])], [("x", F, ["N", 3, 4, 4])], [("y", F)],
               [("s", _w(3)), ("b", _w(3)), ("m", _w(3)), ("v", np.abs(_w(3)) + 1)])
    assert _split(m, level=0) is not None


def embedding_model():
    return _model([N("Gather", ["table", "ids"], ["e"], axis=0), N("ReduceMean", ["e", "ax"], ["y"], keepdims=0)],
                  [("ids", TP.INT64, ["N", 7])], [("y", F)], [("table", _w(10, 4)), ("ax", _i64(1))], opset=18)


def test_gather_of_rows_by_batch_ids_is_separable():
    s = _split(embedding_model(), level=0)
    assert s is not None and s.inputs == {"ids": 0} and s.outputs == [0]
