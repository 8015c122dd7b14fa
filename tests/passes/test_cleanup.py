"""Dead code, no-op removal, CSE, duplicate initializers, If inlining."""

import numpy as np
from onnx import TensorProto, helper
from pass_helpers import F, assert_same, model, ops, optimized, rand


def test_identity_dropout_and_noop_ops_go():
    nodes = [helper.make_node("Identity", ["x"], ["a"]),
             helper.make_node("Dropout", ["a"], ["b"]),
             helper.make_node("Cast", ["b"], ["c"], to=F),
             helper.make_node("Transpose", ["c"], ["d"], perm=[0, 1]),
             helper.make_node("Reshape", ["d", "same"], ["e"]),
             helper.make_node("Mul", ["e", "one"], ["f"]),
             helper.make_node("Add", ["zero", "f"], ["g"]),
             helper.make_node("Div", ["g", "one"], ["h"]),
             helper.make_node("Sub", ["h", "zero"], ["i"]),
             helper.make_node("Relu", ["i"], ["y"])]
    inits = {"same": np.array([2, 3], np.int64), "one": np.ones((1,), np.float32),
             "zero": np.zeros((), np.float32)}
    m = model(nodes, [("x", F, [2, 3])], [("y", F, [2, 3])], inits)
    _, after = optimized(m, level=1)
    assert ops(after) == ["Relu"]
    assert_same(m, after)


def test_broadcasting_neutral_element_is_kept():
    # x (3,) + zeros (2, 3) broadcasts: the Add changes the shape, it is no no-op.
    nodes = [helper.make_node("Add", ["x", "z"], ["y"])]
    m = model(nodes, [("x", F, [3])], [("y", F, [2, 3])], {"z": np.zeros((2, 3), np.float32)})
    _, after = optimized(m, level=1)
    assert ops(after) == ["Add"]
    assert_same(m, after)


def test_dropout_in_training_mode_is_kept():
    nodes = [helper.make_node("Dropout", ["x", "r", "t"], ["y"], seed=1)]
    m = model(nodes, [("x", F, [4]), ("t", TensorProto.BOOL, [])], [("y", F, [4])],
              {"r": np.array(0.5, np.float32)})
    _, after = optimized(m, level=1)
    assert ops(after) == ["Dropout"]


def test_cse_merges_identical_ops_and_dedup_merges_weights():
    w1 = rand(3, 3, seed=3)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["a"]),
             helper.make_node("MatMul", ["x", "w2"], ["b"]),  # w2 holds w1's data
             helper.make_node("Relu", ["a"], ["ra"]),
             helper.make_node("Relu", ["b"], ["rb"]),
             helper.make_node("Add", ["ra", "rb"], ["y"])]
    m = model(nodes, [("x", F, [2, 3])], [("y", F, [2, 3])], {"w1": w1, "w2": w1.copy()})
    g, after = optimized(m, level=1)
    assert ops(after) == ["MatMul", "Relu", "Add"]
    assert len(g.initializers) == 1
    assert_same(m, after)


def test_dead_ops_and_unused_initializers_go():
    nodes = [helper.make_node("Relu", ["x"], ["y"]),
             helper.make_node("Sigmoid", ["x"], ["unused"]),
             helper.make_node("Mul", ["unused", "w"], ["unused2"])]
    m = model(nodes, [("x", F, [2])], [("y", F, [2])], {"w": rand(2), "w_unused": rand(5)})
    g, after = optimized(m, level=1)
    assert ops(after) == ["Relu"] and not g.initializers


def test_if_with_constant_condition_is_inlined():
    then = helper.make_graph([helper.make_node("Neg", ["x"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", F, [2])])
    els = helper.make_graph([helper.make_node("Abs", ["x"], ["e"])], "else", [],
                            [helper.make_tensor_value_info("e", F, [2])])
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=els)]
    m = model(nodes, [("x", F, [2])], [("y", F, [2])], {"c": np.array(False)})
    _, after = optimized(m, level=1)
    assert ops(after) == ["Abs"]
    assert_same(m, after)


def test_graph_output_names_survive():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["y"])]
    m = model(nodes, [("x", F, [2])], [("y", F, [2])])
    _, after = optimized(m)
    assert [o.name for o in after.graph.output] == ["y"] and ops(after) == ["Relu"]
    # An output that is just the input needs its Identity: it stays.
    m = model([helper.make_node("Identity", ["x"], ["y"])], [("x", F, [2])], [("y", F, [2])])
    _, after = optimized(m)
    assert ops(after) == ["Identity"]
    assert_same(m, after)
