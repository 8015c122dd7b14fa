"""The IR API that passes use: use-def chains, edits, subgraph captures, ordering."""

from __future__ import annotations

import networkx as nx
import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from irc.ir import CAPTURE, Graph, Op, Value, from_onnx, to_onnx
from irc.oracle import run

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=(), opset=18):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def _vi(name, shape=(2, 3)):
    return helper.make_tensor_value_info(name, F, shape)


def test_use_def_chains():
    m = _model([helper.make_node("Mul", ["x", "x"], ["y"], name="sq"),
                helper.make_node("Relu", ["y"], ["z"], name="act")], [_vi("x")], [_vi("z")])
    g = from_onnx(m)
    x, y = g.value("x"), g.value("y")
    mul = g.producer(y)
    assert mul.op_type == "Mul" and mul.inputs == [x, x]
    assert g.uses(x) == [(mul, 0), (mul, 1)] or sorted(s for _, s in g.uses(x)) == [0, 1]
    assert [op.name for op in g.consumers(y)] == ["act"]
    assert g.producer(x) is None
    assert [op.name for op in g.topological_ops()] == ["sq", "act"]


def test_replace_all_uses_keeps_output_names_and_semantics():
    m = _model([helper.make_node("Identity", ["x"], ["a"], name="id"),
                helper.make_node("Neg", ["a"], ["y"], name="neg")], [_vi("x")], [_vi("y"), _vi("a")])
    g = from_onnx(m)
    ident = g.producer(g.value("a"))
    g.replace_all_uses(g.value("a"), g.value("x"))
    g.remove_op(ident)
    out = to_onnx(g)
    onnx.checker.check_model(out, full_check=True)
    assert [o.name for o in out.graph.output] == ["y", "a"]
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    before, after = run(m, {"x": x}), run(out, {"x": x})
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_replacing_an_output_by_a_plain_value_renames_it():
    m = _model([helper.make_node("Relu", ["x"], ["r"], name="relu"),
                helper.make_node("Identity", ["r"], ["y"], name="id")], [_vi("x")], [_vi("y")])
    g = from_onnx(m)
    y = g.value("y")
    g.replace_all_uses(y, g.value("r"))
    g.remove_op(g.producer(y))
    assert [v.name for v in g.outputs] == ["y"] and g.producer(g.outputs[0]).op_type == "Relu"
    onnx.checker.check_model(to_onnx(g), full_check=True)


def test_subgraph_captures_are_use_edges_and_follow_replacement():
    then_g = helper.make_graph([helper.make_node("Neg", ["outer"], ["t"])], "then", [], [_vi("t")])
    else_g = helper.make_graph([helper.make_node("Abs", ["outer"], ["e"])], "else", [], [_vi("e")])
    m = _model([helper.make_node("Relu", ["x"], ["outer"], name="relu"),
                helper.make_node("Sigmoid", ["x"], ["other"], name="sig"),
                helper.make_node("If", ["c"], ["y"], name="if", then_branch=then_g, else_branch=else_g)],
               [_vi("x"), helper.make_tensor_value_info("c", TensorProto.BOOL, [])], [_vi("y")])
    g = from_onnx(m)
    if_op = g.producer(g.value("y"))
    assert (if_op, CAPTURE) in g.uses(g.value("outer"))
    assert g.value("outer") in nx.ancestors(g.nx, g.value("y"))
    g.replace_all_uses(g.value("outer"), g.value("other"))
    assert all(sub.free_names() == {"other"} for sub in if_op.subgraphs)
    out = to_onnx(g)
    onnx.checker.check_model(out, full_check=True)
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    got = run(out, {"x": x, "c": np.array(True)})["y"]
    np.testing.assert_allclose(got, -(1 / (1 + np.exp(-x))), rtol=1e-6)


def test_add_op_and_dead_code_via_networkx():
    g = Graph("t")
    x = g.add_input(Value("x", F, ("N", 3)))
    w = g.add_initializer("w", np.ones((3, 2), np.float32))
    mm = g.add_op("MatMul", [x, w], name="mm")
    dead = g.add_op("Relu", [x], name="dead")
    g.outputs.append(mm.output())
    live = set().union(*(nx.ancestors(g.nx, o) for o in g.outputs))
    assert mm in live and dead not in live
    g.remove_op(dead)
    assert g.constant_value(w).shape == (3, 2) and g.constant_value(x) is None
    assert g.op_histogram() == {"MatMul": 1}
    assert g.parameter_stats() == (6, 24)
    mm.output().dtype, mm.output().shape = F, ("N", 2)
    model = to_onnx(g)
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"


def test_unique_names_see_outer_scopes():
    g = Graph("outer")
    g.add_input(Value("x", F, (1,)))
    sub = Graph("inner", parent=g)
    assert sub.unique_name("x") == "x_1"
    assert sub.resolve("x") is sub.captured["x"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["Add", "Mul", "Sub", "Relu", "Neg", "Tanh"]),
                          st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=12))
def test_random_graphs_round_trip(spec):
    """Graphs built through the API serialize to checker-valid ONNX, and back, unchanged."""
    g = Graph("random")
    pool: list[Value] = [g.add_input(Value("a", F, (2, 2))), g.add_input(Value("b", F, (2, 2)))]
    for op_type, i, j in spec:
        ins = [pool[i % len(pool)]] + ([pool[j % len(pool)]] if op_type in ("Add", "Mul", "Sub") else [])
        op: Op = g.add_op(op_type, ins)
        op.output().dtype, op.output().shape = F, (2, 2)
        pool.append(op.output())
    g.outputs.append(pool[-1])
    model = to_onnx(g)
    onnx.checker.check_model(model, full_check=True)
    assert to_onnx(from_onnx(model)) == model
    feeds = {"a": np.full((2, 2), 0.5, np.float32), "b": np.full((2, 2), -0.25, np.float32)}
    assert run(model, feeds)[pool[-1].name].shape == (2, 2)


def test_scalar_constants_stay_0d():
    g = Graph("s")
    v = g.add_initializer("c", np.float32(2.5))
    assert v.shape == () and v.const.numpy().shape == ()
    assert list(v.const.to_proto("c").dims) == []
