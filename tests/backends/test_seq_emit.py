"""Emission of the in-place calls and fused elementwise closures (no cargo: the Rust source).

The op-family crate (test_ops.py, models in seq_models.py) checks the numbers against
onnxruntime; these tests check the shape of the code: dying intermediates are moved into
the layer that reads them last, live ones are borrowed, and chain closures carry no
parentheses rustc would warn about.
"""

from __future__ import annotations

import itertools

import numpy as np
from onnx import helper

from irc.backends.rust.emitter import emit_model
from irc.backends.rust.ops.elementwise import CHAIN_BINARY, CHAIN_UNARY, chain_closure
from irc.backends.rust.prepare import prepare
from irc.ir.onnx_io import from_onnx

from .op_models import F, model


def _forward(m) -> str:
    body = emit_model(prepare(from_onnx(m)), "Model").body
    return body[body.index("pub fn forward"):body.index("pub fn run_any")]


def test_dying_values_are_moved_and_live_ones_borrowed():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="r"),
             helper.make_node("Softmax", ["r"], ["s"], name="s", axis=-1),  # r lives on (read again below)
             helper.make_node("Add", ["s", "r"], ["a"], name="a"),  # last read of both s and r
             helper.make_node("LayerNormalization", ["a", "g"], ["n"], name="n", axis=-1),
             helper.make_node("ReduceMax", ["n"], ["y"], name="y", axes=[1], keepdims=0)]
    fwd = _forward(model("m", nodes, [("x", F, ["N", 5])], [("y", F)], [("g", np.ones(5, np.float32))]))
    assert "rt::relu(x)" in fwd  # a model input is a borrowed parameter, passed as is
    assert "rt::softmax(&r, -1, false)" in fwd
    assert "rt::add(s, r)" in fwd
    assert "rt::layer_norm(a, &self." in fwd
    assert "rt::reduce(&n," in fwd and "drop(n);" in fwd  # Reduce* only borrows
    assert fwd.count("drop(") == 1  # every other intermediate was consumed by its last reader


def test_a_value_read_twice_by_one_node_is_borrowed():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="r"), helper.make_node("Mul", ["r", "r"], ["y"], name="y")]
    fwd = _forward(model("m", nodes, [("x", F, ["N", 5])], [("y", F)]))
    assert "rt::mul(&r, &r)" in fwd and "drop(r);" in fwd


def test_chain_closures_have_no_redundant_parentheses():
    steps = list(CHAIN_UNARY) + list(CHAIN_BINARY)
    for chain in itertools.product(steps, repeat=3):
        closure = chain_closure(list(chain))
        assert not _redundant_parens(closure.split("| ", 1)[1]), closure
        n_extra = sum(1 for s in chain if s in CHAIN_BINARY)
        assert closure.startswith(f"|t: f32, [{', '.join(f'e{i}' for i in range(n_extra))}]: [f32; {n_extra}]|")


def _redundant_parens(expr: str) -> list[str]:
    """Grouping parentheses rustc's `unused_parens` would flag: around the whole expression,
    a whole call argument, or a bare name."""
    found, stack = [], []
    for i, ch in enumerate(expr):
        if ch == "(":
            grouping = i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] == "_")
            stack.append((i, grouping))
        elif ch == ")":
            start, grouping = stack.pop()
            if not grouping:
                continue
            inner, before, after = expr[start + 1:i], expr[:start].rstrip(), expr[i + 1:].lstrip()
            whole = start == 0 and i == len(expr) - 1
            argument = before.endswith(("(", ",")) and (after.startswith((")", ",")))
            if whole or argument or inner.isidentifier():
                found.append(expr[start:i + 1])
    return found


def test_chain_closure_respects_precedence():
    # (t + e0) * e1 must keep its parentheses; t * e0 + e1 needs none; -(t - e0) keeps them.
    assert chain_closure(["Add", "Mul"]).endswith("| (t + e0) * e1")
    assert chain_closure(["Mul", "Add"]).endswith("| t * e0 + e1")
    assert chain_closure(["Sub", "Neg"]).endswith("| -(t - e0)")
    assert chain_closure(["Div", "Reciprocal"]).endswith("| 1.0 / (t / e0)")
    assert chain_closure(["Neg", "Abs"]).endswith("| (-t).abs()")


def test_reference_values_of_a_chain_closure():
    """The closure's expression, read as Python, computes the chain it names (spot check)."""
    closure = chain_closure(["Add", "Mul", "Sub", "Div"])
    expr = closure.split("| ", 1)[1]
    t, e0, e1, e2, e3 = 1.5, -0.25, 3.0, 0.5, 2.0
    assert np.isclose(eval(expr, {}, dict(t=t, e0=e0, e1=e1, e2=e2, e3=e3)), (((t + e0) * e1) - e2) / e3)
