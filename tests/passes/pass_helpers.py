"""Tiny-graph builders and the before/after oracle check shared by the pass tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from irc import oracle
from irc.ir import Graph, from_onnx, to_onnx
from irc.passes import optimize

F = TensorProto.FLOAT


def model(nodes, inputs, outputs, inits=(), opset=18, functions=()) -> onnx.ModelProto:
    """A ModelProto from node protos; inputs/outputs as (name, elem_type, shape)."""
    g = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        [numpy_helper.from_array(np.asarray(a), name) for name, a in dict(inits).items()],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], functions=list(functions))
    m.ir_version = 10
    return m


def optimized(m: onnx.ModelProto, level: int = 2, **kw) -> tuple[Graph, onnx.ModelProto]:
    g = from_onnx(m)
    optimize(g, level, **kw)
    return g, to_onnx(g)


def assert_same(before: onnx.ModelProto, after: onnx.ModelProto, feeds=None, rtol=None,
                atol=None, seed=0) -> dict:
    """onnx.checker passes on ``after`` and onnxruntime gives the same outputs."""
    onnx.checker.check_model(after)
    feeds = feeds if feeds is not None else oracle.random_inputs(from_onnx(before), seed=seed)
    exp = oracle.run(before, feeds, optimize=False)
    got = oracle.run(after, feeds, optimize=False)
    assert exp.keys() == got.keys()
    for name in exp:
        if rtol is not None:
            np.testing.assert_allclose(got[name], exp[name], rtol=rtol, atol=atol or 0)
        else:
            diff = oracle.compare_arrays(name, exp[name], got[name])
            assert diff.ok, f"{name}: {diff}"
    return got


def ops(m: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in m.graph.node]


def rand(*shape, seed=0, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)
