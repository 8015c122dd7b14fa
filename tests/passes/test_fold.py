"""Constant folding and shape folding."""

import numpy as np
from onnx import TensorProto, helper
from pass_helpers import F, assert_same, model, ops, optimized, rand

from irc.ir import from_onnx
from irc.passes import optimize


def test_all_constant_subgraph_folds_to_initializer():
    a, b = rand(3, 4, seed=1), rand(4, 5, seed=2)
    nodes = [helper.make_node("MatMul", ["a", "b"], ["ab"]),
             helper.make_node("Exp", ["ab"], ["e"]),
             helper.make_node("Add", ["x", "e"], ["y"])]
    m = model(nodes, [("x", F, [3, 5])], [("y", F, [3, 5])], {"a": a, "b": b})
    _, after = optimized(m, passes=["shapes", "fold", "dce"])
    assert ops(after) == ["Add"]
    assert_same(m, after)


def test_folding_computes_float32_in_float64():
    # [1e8, 1, -1e8] . [1, 1, 1] is 0 summed in float32 but exactly 1 in float64.
    nodes = [helper.make_node("MatMul", ["a", "b"], ["d"]),
             helper.make_node("Mul", ["x", "d"], ["y"])]
    a = np.array([[1e8, 1.0, -1e8]], np.float32)
    b = np.ones((3, 1), np.float32)
    m = model(nodes, [("x", F, [1, 1])], [("y", F, [1, 1])], {"a": a, "b": b})
    g, _ = optimized(m, passes=["fold"])
    d = g.values["d"].const.numpy()
    assert d.dtype == np.float32 and d.shape == (1, 1)
    assert float(d[0, 0]) == 1.0


def test_constant_nodes_become_initializers():
    nodes = [helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c", F, [2], [1.5, 2.5])),
             helper.make_node("Constant", [], ["k"], value_int=3),
             helper.make_node("Mul", ["x", "c"], ["y"])]
    m = model(nodes, [("x", F, [2])], [("y", F, [2])])
    g, after = optimized(m, level=1)
    assert ops(after) == ["Mul"]
    assert "c" in g.initializers and "k" not in g.values
    assert_same(m, after)


def test_huge_constant_of_shape_is_never_materialized():
    shape = np.array([1_000_000, 1_000_000], np.int64)  # 10^12 elements
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["big"],
                              value=helper.make_tensor("v", F, [1], [0.0])),
             helper.make_node("Shape", ["big"], ["y"])]
    m = model(nodes, [("x", F, [1])], [("y", TensorProto.INT64, [2])], {"s": shape})
    g = from_onnx(m)
    report = optimize(g, 1, passes=["fold"])
    assert "ConstantOfShape" in [o.op_type for o in g.ops]
    assert any("exceeds the fold limit" in n for n in report.per_pass["fold"].notes)


def test_fold_limit_is_respected():
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["c"], value=helper.make_tensor("v", F, [1], [2.0])),
             helper.make_node("Add", ["x", "c"], ["y"])]
    m = model(nodes, [("x", F, [64, 64])], [("y", F, [64, 64])], {"s": np.array([64, 64], np.int64)})
    g = from_onnx(m)
    optimize(g, passes=["shapes", "fold"], fold_limit=1024)
    assert "ConstantOfShape" in [o.op_type for o in g.ops]
    g = from_onnx(m)
    optimize(g, passes=["shapes", "fold"], fold_limit=1 << 20)
    assert "ConstantOfShape" not in [o.op_type for o in g.ops]
    g = from_onnx(m)
    optimize(g, passes=["shapes", "fold"], fold_total=1000)
    assert "ConstantOfShape" in [o.op_type for o in g.ops]


def test_shape_scaffolding_of_a_dynamic_batch_folds_to_a_static_reshape():
    # PyTorch-style flatten: Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])).
    nodes = [helper.make_node("Shape", ["x"], ["shp"]),
             helper.make_node("Gather", ["shp", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
             helper.make_node("Shape", ["x"], ["shp2"]),
             helper.make_node("Gather", ["shp2", "one"], ["c"], axis=0),
             helper.make_node("Unsqueeze", ["c", "axes0"], ["c1"]),
             helper.make_node("Concat", ["n1", "c1", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"])]
    inits = {"zero": np.array(0, np.int64), "one": np.array(1, np.int64),
             "axes0": np.array([0], np.int64), "minus1": np.array([-1], np.int64)}
    m = model(nodes, [("x", F, ["N", 3, 4, 5])], [("y", F, ["N", 3, 20])], inits)
    g, after = optimized(m)
    assert ops(after) == ["Reshape"]
    target = g.constant_value(g.topological_ops()[0].input(1))
    assert list(target) == [0, 3, -1]
    for batch in (1, 3):
        assert_same(m, after, {"x": rand(batch, 3, 4, 5)})


def test_static_shape_becomes_constant():
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Cast", ["s"], ["y"], to=F)]
    m = model(nodes, [("x", F, [2, 7])], [("y", F, [2])])
    _, after = optimized(m)
    assert ops(after) == []
    assert_same(m, after)


def test_weight_stored_as_constant_of_shape_folds_past_the_per_tensor_limit():
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["w"], value=helper.make_tensor("v", F, [1], [0.01])),
             helper.make_node("Gemm", ["x", "w"], ["y"])]
    m = model(nodes, [("x", F, [2, 64])], [("y", F, [2, 64])], {"s": np.array([64, 64], np.int64)})
    g = from_onnx(m)
    optimize(g, passes=["shapes", "fold"], fold_limit=1024)
    assert [o.op_type for o in g.ops] == ["Gemm"]
    g = from_onnx(m)
    optimize(g, passes=["shapes", "fold"], fold_limit=1024, fold_total=1024)
    assert "ConstantOfShape" in [o.op_type for o in g.ops]


def test_shape_inference_keeps_symbolic_dims_by_name():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["y"])]
    m = model(nodes, [("x", F, ["batch", 3, 5, 5])], [("y", F, None)], {"w": rand(4, 3, 3, 3)})
    g = from_onnx(m)
    assert g.values["c"].shape is None
    report = optimize(g, passes=["shapes"])
    assert report.per_pass["shapes"].changes == 1
    assert g.values["c"].shape == ("batch", 4, 5, 5) and g.values["c"].dtype == F
    assert g.values["y"].shape == ("batch", 100)
