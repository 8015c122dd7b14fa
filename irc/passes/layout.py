"""Layout chains: Transpose cancellation and Reshape/Squeeze/Unsqueeze/Flatten collapse."""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Op, Value
from .manager import Context, PassResult, register
from .util import bypass, const, is_std, new_const, only_consumer, same_shape

_SHAPE_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


@register("transpose", 2, "merge Transpose pairs; drop those that cancel")
def transposes(graph: Graph, ctx: Context) -> PassResult:
    result = PassResult()
    for op in graph.topological_ops():
        if op not in graph.nx or not is_std(op, "Transpose"):
            continue
        _pull_through_unary(graph, op, result)
        x = op.input(0)
        first = graph.producer(x) if x is not None else None
        if first is None or not is_std(first, "Transpose") or only_consumer(graph, x) is not op:
            continue
        p1, p2 = _perm(first), _perm(op)
        if p1 is None or p2 is None or len(p1) != len(p2):
            continue
        composed = [p1[i] for i in p2]
        src = first.input(0)
        if composed == list(range(len(composed))):
            if bypass(graph, op, src):
                result.note(f"Transpose {first.name} and {op.name} cancel")
            continue
        graph.set_input(op, 0, src)
        op.set_attr("perm", composed)
        graph.remove_op(first)
        result.note(f"Transpose {first.name} merged into {op.name}")
    return result


_UNARY = ("Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Exp", "Log", "Sqrt", "Erf", "LeakyRelu",
          "Elu", "Selu", "Softplus", "HardSigmoid", "Reciprocal", "Floor", "Ceil", "Sign", "Cast")


_SCALAR_BINARY = ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min")


def _layout_free_slot(graph: Graph, op: Op) -> int | None:
    """The input slot of an op that acts element by element whatever the layout: a
    unary elementwise op, or a binary one whose other operand is a 1-element constant."""
    if op.n_outputs != 1:
        return None
    if is_std(op, *_UNARY) and op.n_inputs == 1:
        return 0
    if is_std(op, *_SCALAR_BINARY) and op.n_inputs == 2 and op.input(0) is not op.input(1):
        for slot in (0, 1):
            other = const(graph, op.input(1 - slot))
            x = op.input(slot)
            if other is not None and other.size == 1 and x is not None and x.rank is not None \
                    and other.ndim <= x.rank and graph.producer(x) is not None:
                return slot
    return None


def _pull_through_unary(graph: Graph, second: Op, result: PassResult) -> None:
    """Transpose -> elementwise -> Transpose: the first Transpose moves after the
    elementwise op, where it meets the second and merges (one Transpose fewer)."""
    y = second.input(0)
    unary = graph.producer(y) if y is not None else None
    if unary is None or only_consumer(graph, y) is not second:
        return
    slot = _layout_free_slot(graph, unary)
    if slot is None:
        return
    x = unary.input(slot)
    first = graph.producer(x) if x is not None else None
    if first is None or not is_std(first, "Transpose") or only_consumer(graph, x) is not unary:
        return
    src = first.input(0)
    graph.set_input(unary, slot, src)
    graph.set_input(second, 0, first.output(0))
    graph.set_input(first, 0, y)
    # first now transposes the elementwise op's output; its value names keep their meaning
    y.shape = src.shape
    first.output(0).shape = x.shape
    first.output(0).dtype = y.dtype  # a Cast changes the type
    result.note(f"Transpose {first.name} moved after {unary.op_type} {unary.name}")


def _perm(op: Op) -> list[int] | None:
    perm = op.attr("perm")
    if perm is not None:
        return [int(p) for p in perm]
    rank = op.input(0).rank
    return None if rank is None else list(range(rank))[::-1]


@register("reshape_chain", 2, "collapse Reshape/Flatten/Squeeze/Unsqueeze chains into one Reshape")
def reshape_chain(graph: Graph, ctx: Context) -> PassResult:
    result = PassResult()
    for op in graph.topological_ops():
        if op not in graph.nx or op.domain not in ("", "ai.onnx") or op.op_type not in _SHAPE_OPS:
            continue
        x = op.input(0)
        first = graph.producer(x) if x is not None else None
        if first is None or not is_std(first, *_SHAPE_OPS) or only_consumer(graph, x) is not op:
            continue
        src, out = first.input(0), op.output(0)
        if same_shape(src, out) and bypass(graph, op, src):
            graph.remove_op(first)
            result.note(f"{first.op_type} {first.name} and {op.op_type} {op.name} cancel")
            continue
        target = _target(graph, op, out)
        if target is None:
            continue
        shape = new_const(graph, (op.name or "reshape") + "_shape", np.array(target, np.int64))
        graph.remove_op(op, keep_outputs=True)
        graph.remove_op(first)
        graph.add_op("Reshape", [src, shape], outputs=[out], name=op.name)
        result.note(f"{first.op_type} {first.name} + {op.op_type} {op.name} -> Reshape {target}")
    return result


def _target(graph: Graph, op: Op, out: Value) -> list[int] | None:
    """A Reshape target giving ``out``'s shape from any input of the same size."""
    if out.shape is not None:
        dims = [d if isinstance(d, int) and d > 0 else None for d in out.shape]
        if 0 not in out.shape and dims.count(None) <= 1:
            return [-1 if d is None else d for d in dims]
    if op.op_type == "Reshape" and not op.attr("allowzero", 0):
        t = const(graph, op.input(1))
        if t is not None and not np.any(t == 0):
            return [int(d) for d in t]
    return None


@register("concat", 2, "flatten nested Concats on the same axis")
def concat(graph: Graph, ctx: Context) -> PassResult:
    result = PassResult()
    for op in graph.topological_ops():
        if op not in graph.nx or not is_std(op, "Concat"):
            continue
        axis, ins, merged = op.attr("axis"), [], False
        rank = op.output(0).rank
        for v in op.inputs:
            inner = graph.producer(v) if v is not None else None
            if (inner is not None and is_std(inner, "Concat") and only_consumer(graph, v) is op
                    and _same_axis(inner.attr("axis"), axis, rank)):
                ins.extend(inner.inputs)
                graph.remove_op(inner, keep_outputs=True)
                merged = True
            else:
                ins.append(v)
        if merged:
            out = op.output(0)
            graph.remove_op(op, keep_outputs=True)  # dangling inner outputs: dce drops them
            graph.add_op("Concat", ins, outputs=[out], name=op.name, attrs={"axis": axis})
            result.note(f"nested Concats flattened into {op.name}")
    return result


def _same_axis(a: int, b: int, rank: int | None) -> bool:
    if a == b:
        return True
    return rank is not None and a % rank == b % rank
