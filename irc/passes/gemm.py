"""MatMul + Add -> Gemm for 2-D products (and a bias-less Gemm + Add -> Gemm).

Gemm's C must broadcast one way to (M, N): the bias has rank <= 2 and each of
its dims is 1 or the output's. The N-D form (Reshape around a 2-D Gemm) costs
two Reshapes to save one Add, so it never pays in node count and is not done.
"""

from __future__ import annotations

from onnx import TensorProto

from ..ir import Graph, Op, Value
from .manager import Context, PassResult, register
from .util import only_consumer

_FLOATS = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}


@register("gemm", 2, "MatMul+Add (2-D) -> Gemm")
def gemm(graph: Graph, ctx: Context) -> PassResult:
    result = PassResult()
    if ctx.opset() < 7:
        return result
    for add in graph.topological_ops():
        if add not in graph.nx or add.op_type != "Add" or add.domain not in ("", "ai.onnx"):
            continue
        for prod_in, bias in ((add.input(0), add.input(1)), (add.input(1), add.input(0))):
            mm = graph.producer(prod_in) if prod_in is not None else None
            if mm is None or mm.domain not in ("", "ai.onnx") or prod_in is bias:
                continue
            if _fusable(graph, mm, prod_in, bias, add):
                _fuse(graph, mm, add, bias)
                result.note(f"{mm.op_type} {mm.name} + Add {add.name} -> Gemm")
                break
    return result


def _fusable(graph: Graph, mm: Op, y: Value, bias: Value, add: Op) -> bool:
    if mm.op_type == "MatMul":
        a, b = mm.input(0), mm.input(1)
        if a is None or b is None or a.rank != 2 or b.rank != 2:
            return False
    elif mm.op_type == "Gemm":
        if mm.input(2) is not None:
            return False
    else:
        return False
    if only_consumer(graph, y) is not add or y.dtype not in _FLOATS or bias.dtype != y.dtype:
        return False
    out = y.shape
    if out is None or len(out) != 2 or bias.shape is None or len(bias.shape) > 2:
        return False
    for d_bias, d_out in zip(reversed(bias.shape), reversed(out), strict=False):
        if d_bias != 1 and (d_bias != d_out or d_bias is None):
            return False
    return True


def _fuse(graph: Graph, mm: Op, add: Op, bias: Value) -> None:
    out = add.output(0)
    ins = [mm.input(0), mm.input(1), bias]
    attrs = {k: a.value for k, a in mm.attrs.items()} if mm.op_type == "Gemm" else {}
    name = mm.name or add.name
    graph.remove_op(add, keep_outputs=True)
    graph.remove_op(mm)
    gemm_op = graph.add_op("Gemm", ins, outputs=[out], name=name)
    for k, v in attrs.items():
        gemm_op.set_attr(k, v)
