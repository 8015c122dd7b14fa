"""Property test: on random small graphs, every level keeps onnxruntime's outputs."""

from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper
from pass_helpers import F, assert_same, model, optimized

C = 3
KINDS = ["add_const", "mul_const", "neutral", "relu", "sigmoid", "tanh", "identity", "transpose_pair",
         "reshape_roundtrip", "conv_bn", "conv_mul", "unsqueeze_squeeze", "duplicate", "const_chain",
         "pad_conv", "cast_same", "matmul_add", "gelu"]


class Builder:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], {}, 0

    def name(self, hint: str) -> str:
        self.n += 1
        return f"{hint}{self.n}"

    def const(self, array) -> str:
        name = self.name("c")
        self.inits[name] = np.asarray(array)
        return name

    def node(self, op, inputs, **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def randn(self, *shape):
        return self.rng.standard_normal(shape).astype(np.float32)

    def step(self, kind: str, t: str) -> str:
        n = self.node
        if kind == "add_const":
            shape = [(), (C, 1, 1), (1, C, 1, 1), (C, 4, 4)][self.rng.integers(4)]
            return n("Add", [t, self.const(self.randn(*shape))])
        if kind == "mul_const":
            return n("Mul", [self.const(self.randn(C, 1, 1)), t])
        if kind == "neutral":
            return n("Mul", [n("Add", [t, self.const(np.zeros(1, np.float32))]), self.const(np.ones((), np.float32))])
        if kind in ("relu", "sigmoid", "tanh", "identity"):
            return n(kind.capitalize(), [t])
        if kind == "transpose_pair":
            return n("Transpose", [n("Transpose", [t], perm=[0, 2, 3, 1])], perm=[0, 3, 1, 2])
        if kind == "reshape_roundtrip":
            flat = n("Reshape", [t, self.const(np.array([0, -1], np.int64))])
            return n("Reshape", [flat, self.const(np.array([-1, C, 4, 4], np.int64))])
        if kind == "conv_bn":
            conv = n("Conv", [t, self.const(self.randn(C, C, 3, 3) * 0.3)], pads=[1, 1, 1, 1])
            stats = [self.randn(C) + 1, self.randn(C), self.randn(C), np.abs(self.randn(C)) + 0.1]
            return n("BatchNormalization", [conv] + [self.const(s) for s in stats])
        if kind == "conv_mul":
            conv = n("Conv", [t, self.const(self.randn(C, C, 1, 1)), self.const(self.randn(C))])
            return n("Add", [n("Mul", [conv, self.const(self.randn(1, C, 1, 1))]), self.const(self.randn(C, 1, 1))])
        if kind == "unsqueeze_squeeze":
            axes = self.const(np.array([1], np.int64))
            return n("Squeeze", [n("Unsqueeze", [t, axes]), axes])
        if kind == "duplicate":
            return n("Add", [n("Relu", [t]), n("Relu", [t])])
        if kind == "const_chain":
            folded = n("Exp", [n("Mul", [self.const(self.randn(C, 1, 1)), self.const(np.float32(0.5))])])
            return n("Sub", [t, folded])
        if kind == "pad_conv":
            pads = self.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))
            return n("Conv", [n("Pad", [t, pads]), self.const(self.randn(C, C, 3, 3) * 0.3)])
        if kind == "cast_same":
            return n("Cast", [t], to=F)
        if kind == "matmul_add":
            flat = n("Reshape", [t, self.const(np.array([-1, 4], np.int64))])
            mm = n("Add", [n("MatMul", [flat, self.const(self.randn(4, 4))]), self.const(self.randn(4))])
            return n("Reshape", [mm, self.const(np.array([2, C, 4, 4], np.int64))])
        if kind == "gelu":
            e = n("Erf", [n("Div", [t, self.const(np.float32(np.sqrt(2)))])])
            return n("Mul", [n("Mul", [t, n("Add", [e, self.const(np.float32(1))])]), self.const(np.float32(0.5))])
        raise AssertionError(kind)


@settings(max_examples=int(os.environ.get("IRC_HYPOTHESIS_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=7),
       seed=st.integers(0, 2**16), level=st.sampled_from([1, 2, 3]), opset=st.sampled_from([13, 17]))
def test_random_graphs_keep_their_outputs(kinds, seed, level, opset):
    b = Builder(seed)
    t = "x"
    for kind in kinds:
        t = b.step(kind, t)
    b.nodes.append(helper.make_node("Identity", [t], ["y"]))
    m = model(b.nodes, [("x", F, [2, C, 4, 4])], [("y", F, [2, C, 4, 4])], b.inits, opset=opset)
    _, after = optimized(m, level=level, debug=True)  # onnx.checker after every pass
    assert len(after.graph.node) <= len(m.graph.node)
    assert_same(m, after, seed=seed)
