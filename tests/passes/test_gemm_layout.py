"""MatMul+Add -> Gemm; Transpose and Reshape chains."""

import numpy as np
import pytest
from onnx import helper
from pass_helpers import F, assert_same, model, ops, optimized, rand


@pytest.mark.parametrize("bias_shape", [(5,), (1, 5), (3, 5), (3, 1), ()])
def test_matmul_add_to_gemm(bias_shape):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["b", "m"], ["y"])]
    m = model(nodes, [("x", F, [3, 4])], [("y", F, [3, 5])],
              {"w": rand(4, 5, seed=1), "b": rand(*bias_shape, seed=2)})
    _, after = optimized(m)
    assert ops(after) == ["Gemm"]
    assert_same(m, after)


def test_matmul_add_nd_and_broadcasting_bias_stay():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])]
    m = model(nodes, [("x", F, [2, 3, 4])], [("y", F, [2, 3, 5])], {"w": rand(4, 5), "b": rand(5)})
    _, after = optimized(m)
    assert ops(after) == ["MatMul", "Add"]
    m = model(nodes, [("x", F, [3, 4])], [("y", F, [2, 3, 5])], {"w": rand(4, 5), "b": rand(2, 1, 5)})
    _, after = optimized(m)
    assert ops(after) == ["MatMul", "Add"]
    assert_same(m, after)


def test_matmul_used_twice_is_not_fused():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Mul", ["m", "a"], ["y"])]
    m = model(nodes, [("x", F, [3, 4])], [("y", F, [3, 5])], {"w": rand(4, 5), "b": rand(5)})
    _, after = optimized(m)
    assert ops(after) == ["MatMul", "Add", "Mul"]


def test_transposes_cancel_and_merge():
    nodes = [helper.make_node("Transpose", ["x"], ["a"], perm=[0, 2, 3, 1]),
             helper.make_node("Transpose", ["a"], ["b"], perm=[0, 3, 1, 2]),
             helper.make_node("Relu", ["b"], ["r"]),
             helper.make_node("Transpose", ["r"], ["c"], perm=[1, 0, 2, 3]),
             helper.make_node("Transpose", ["c"], ["y"], perm=[0, 1, 3, 2])]
    m = model(nodes, [("x", F, [2, 3, 4, 5])], [("y", F, [3, 2, 5, 4])])
    g, after = optimized(m)
    assert ops(after) == ["Relu", "Transpose"]
    assert list(g.topological_ops()[1].attr("perm")) == [1, 0, 3, 2]
    assert_same(m, after)


def test_reshape_chain_collapses():
    nodes = [helper.make_node("Flatten", ["x"], ["a"], axis=1),
             helper.make_node("Unsqueeze", ["a", "ax"], ["b"]),
             helper.make_node("Reshape", ["b", "s"], ["c"]),
             helper.make_node("Squeeze", ["c", "ax0"], ["y"])]
    inits = {"ax": np.array([2], np.int64), "s": np.array([1, -1, 4], np.int64),
             "ax0": np.array([0], np.int64)}
    m = model(nodes, [("x", F, ["N", 3, 4])], [("y", F, None)], inits)
    g, after = optimized(m)
    assert ops(after) == ["Reshape"]
    assert_same(m, after, {"x": rand(1, 3, 4)})


def test_unsqueeze_squeeze_cancel():
    nodes = [helper.make_node("Unsqueeze", ["x", "ax"], ["a"]),
             helper.make_node("Squeeze", ["a", "ax"], ["b"]),
             helper.make_node("Relu", ["b"], ["y"])]
    m = model(nodes, [("x", F, ["N", 3])], [("y", F, ["N", 3])], {"ax": np.array([1], np.int64)})
    _, after = optimized(m)
    assert ops(after) == ["Relu"]
    assert_same(m, after)


def test_nested_concats_flatten():
    nodes = [helper.make_node("Concat", ["x", "x"], ["a"], axis=1),
             helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Concat", ["r", "x"], ["b"], axis=-1),
             helper.make_node("Concat", ["a", "b", "x"], ["y"], axis=1)]
    m = model(nodes, [("x", F, [2, 3])], [("y", F, [2, 15])])
    _, after = optimized(m)
    assert ops(after) == ["Relu", "Concat"]
    assert_same(m, after)


def test_transpose_pulled_through_unary_then_cancelled():
    nodes = [helper.make_node("Transpose", ["x"], ["a"], perm=[0, 2, 3, 1]),
             helper.make_node("Sigmoid", ["a"], ["s"]),
             helper.make_node("Transpose", ["s"], ["y"], perm=[0, 3, 1, 2])]
    m = model(nodes, [("x", F, [2, 3, 4, 5])], [("y", F, [2, 3, 4, 5])])
    _, after = optimized(m)
    assert ops(after) == ["Sigmoid"]
    assert_same(m, after)


def test_transpose_pulled_through_scalar_binary_op():
    nodes = [helper.make_node("Transpose", ["x"], ["a"], perm=[0, 2, 3, 1]),
             helper.make_node("Sub", ["k", "a"], ["s"]),
             helper.make_node("Transpose", ["s"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Transpose", ["t"], ["u"], perm=[0, 2, 3, 1]),
             helper.make_node("Add", ["u", "v"], ["w"]),  # (3,) is not a scalar: stays put
             helper.make_node("Transpose", ["w"], ["y"], perm=[0, 3, 1, 2])]
    m = model(nodes, [("x", F, [2, 3, 4, 5])], [("y", F, [2, 3, 4, 5])],
              {"k": np.array([[1.5]], np.float32), "v": rand(3)})
    _, after = optimized(m)
    assert ops(after) == ["Sub", "Transpose", "Add", "Transpose"]
    assert_same(m, after)
