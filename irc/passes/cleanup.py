"""Level-1 cleanup: dead code, no-op ops, common subexpressions, duplicate weights,
and If nodes whose condition is known."""

from __future__ import annotations

import hashlib

import numpy as np
from onnx import AttributeProto, TensorProto

from ..ir import Graph, Op, Tensor, Value
from .fold import NONDETERMINISTIC
from .manager import Context, PassResult, register
from .util import bypass, const, is_std, same_shape, static_shape, weights_in_inputs


@register("dce", 1, "remove ops and initializers no output depends on")
def dce(graph: Graph, ctx: Context) -> PassResult:
    result = PassResult()
    live: set = set()
    stack = [v for v in graph.outputs]
    while stack:
        node = stack.pop()
        if node in live:
            continue
        live.add(node)
        stack.extend(graph.nx.predecessors(node))
    for op in graph.ops:
        if op not in live:
            graph.remove_op(op, keep_outputs=True)
            result.note(f"removed dead {op.op_type} {op.name}")
    if weights_in_inputs(graph) and graph.parent is None:
        # Before IR 4 weights had to be listed as inputs; from IR 4 on they need not be,
        # and an initializer-backed input would mean an overridable default instead.
        graph.inputs = [v for v in graph.inputs if v.name not in graph.initializers]
        graph.model.ir_version = 4
        result.note("weights removed from the graph inputs (IR version 3 -> 4)")
    keep = {id(v) for v in graph.inputs} | {id(v) for v in graph.outputs}
    for value in list(graph.values.values()):
        if id(value) in keep or value.name in graph.captured or graph.nx.degree(value):
            continue
        if value.name in graph.initializers:
            result.note(f"removed unused initializer {value.name}")
        graph.remove_value(value)
    return result


# -- no-op removal ------------------------------------------------------------------

_SHAPE_KEEPING = ("Reshape", "Expand", "Tile", "Flatten", "Squeeze", "Unsqueeze")
_NEUTRAL = {"Add": (0, True), "Sub": (0, False), "Mul": (1, True), "Div": (1, False),
            "Pow": (1, False)}


@register("noop", 1, "remove Identity, Dropout, and ops that do nothing (x*1, x+0, same-type Cast...)")
def noop(graph: Graph, ctx: Context) -> PassResult:
    result = PassResult()
    for op in graph.topological_ops():
        if op not in graph.nx or op.domain not in ("", "ai.onnx"):
            continue
        src = _noop_source(graph, op)
        if src is not None and bypass(graph, op, src):
            result.note(f"removed no-op {op.op_type} {op.name}")
    return result


def _noop_source(graph: Graph, op: Op) -> Value | None:
    """The input ``op`` passes through unchanged, or None."""
    t, x, out = op.op_type, op.input(0), op.output(0)
    if x is None or out is None:
        return None
    if t == "Identity" and x.type_proto is None:
        return x
    if t == "Dropout":
        mask = op.output(1)
        training = const(graph, op.input(2))
        if (mask is None or not graph.uses(mask) and not graph.is_output(mask)) and (
                op.input(2) is None or (training is not None and not training.any())):
            return x
        return None
    if t in ("Cast", "CastLike"):
        target = op.attr("to") if t == "Cast" else (op.input(1).dtype if op.input(1) else None)
        return x if x.dtype is not None and x.dtype == target else None
    if t == "Transpose":
        perm = op.attr("perm")
        if perm is None:
            return x if x.rank is not None and x.rank <= 1 else None
        return x if list(perm) == list(range(len(perm))) else None
    if t in ("Concat", "Sum", "Max", "Min", "Mean") and op.n_inputs == 1:
        return x
    if t == "Split" and op.n_outputs == 1 and same_shape(x, out):
        return x
    if t in _SHAPE_KEEPING and same_shape(x, out) and x.dtype == out.dtype:
        return x
    if t == "Slice" and same_shape(x, out):
        steps = const(graph, op.input(4))
        return x if op.input(4) is None or (steps is not None and np.all(steps == 1)) else None
    if t == "Pad":
        pads = const(graph, op.input(1)) if op.n_inputs > 1 else np.array(op.attr("pads", [1]))
        return x if pads is not None and not np.any(pads) else None
    if t in _NEUTRAL:
        return _neutral_operand(graph, op)
    return None


def _neutral_operand(graph: Graph, op: Op) -> Value | None:
    """x for x+0, 0+x, x-0, x*1, 1*x, x/1, x**1, if the result has x's shape and type."""
    neutral, commutes = _NEUTRAL[op.op_type]
    a, b, out = op.input(0), op.input(1), op.output(0)
    for x, c_val in ((a, b), (b, a)) if commutes else ((a, b),):
        c = const(graph, c_val)
        if c is None or x is None or c.dtype.kind not in "fiu" or not c.size:
            continue
        if not np.all(c == neutral) or x.dtype is None or x.dtype != out.dtype:
            continue
        if same_shape(x, out) or (x.rank is not None and c.ndim <= x.rank and c.size == 1):
            return x
    return None


# -- common subexpressions ------------------------------------------------------------


@register("cse", 1, "merge ops that compute the same thing from the same inputs")
def cse(graph: Graph, ctx: Context) -> PassResult:
    result = PassResult()
    seen: dict = {}
    for op in graph.topological_ops():
        if op.op_type in NONDETERMINISTIC or op.subgraphs or not op.n_outputs:
            continue
        key = _op_key(op)
        if key is None:
            continue
        first = seen.get(key)
        if first is None:
            seen[key] = op
            continue
        pairs = list(zip(op.outputs, first.outputs, strict=True))
        if any(dup is not None and (graph.is_output(dup) or keep is None) for dup, keep in pairs):
            continue
        for dup, keep in pairs:
            if dup is not None:
                graph.replace_all_uses(dup, keep)
        graph.remove_op(op)
        result.note(f"merged {op.op_type} {op.name} into {first.name}")
    return result


def _op_key(op: Op):
    attrs = []
    for name, a in sorted(op.attrs.items()):
        if a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
            return None
        if a.type == AttributeProto.TENSOR:
            attrs.append((name, _tensor_key(a.value)))
        elif a.type == AttributeProto.TENSORS:
            attrs.append((name, tuple(_tensor_key(t) for t in a.value)))
        else:
            val = a.value
            attrs.append((name, tuple(val) if isinstance(val, list) else val))
    ins = tuple(id(v) if v is not None else None for v in op.inputs)
    outs = tuple(v is None for v in op.outputs)
    try:
        key = (op.domain, op.op_type, ins, tuple(attrs), outs)
        hash(key)
    except TypeError:
        return None
    return key


def _tensor_key(tensor: Tensor):
    if tensor.elem_type == TensorProto.STRING:
        return (tensor.dims, tuple(tensor.numpy().ravel().tolist()))
    return (tensor.elem_type, tensor.dims, hashlib.sha1(tensor.raw_bytes()).hexdigest())


# -- duplicate initializers -----------------------------------------------------------------


@register("dedup", 1, "merge initializers holding identical data")
def dedup(graph: Graph, ctx: Context) -> PassResult:
    result = PassResult()
    protected = {id(v) for v in graph.inputs} | {id(v) for v in graph.outputs}
    groups: dict = {}
    for value in graph.initializers.values():
        t = value.const
        if t is None or id(value) in protected or t.elem_type == TensorProto.STRING:
            continue
        groups.setdefault((t.elem_type, t.dims), []).append(value)
    for members in groups.values():
        if len(members) < 2:
            continue
        by_hash: dict[str, Value] = {}
        for value in members:
            digest = _digest(value.const)
            keep = by_hash.setdefault(digest, value)
            if keep is not value:
                graph.replace_all_uses(value, keep)
                graph.remove_value(value)
                result.note(f"initializer {value.name} merged into {keep.name}")
    return result


def _digest(tensor: Tensor) -> str:
    """Hash of the data; arrays already decoded are hashed without re-encoding them."""
    array = tensor._array
    data = np.ascontiguousarray(array).tobytes() if array is not None else tensor.raw_bytes()
    return hashlib.sha1(data).hexdigest()


# -- If with a known condition ----------------------------------------------------------------


@register("inline_if", 1, "replace an If whose condition is constant by the taken branch")
def inline_if(graph: Graph, ctx: Context) -> PassResult:
    result = PassResult()
    for op in graph.topological_ops():
        if not is_std(op, "If"):
            continue
        cond = const(graph, op.input(0))
        if cond is None or cond.size != 1:
            continue
        branch = op.attr("then_branch") if bool(cond.ravel()[0]) else op.attr("else_branch")
        if branch is not None and _inline(graph, op, branch):
            result.note(f"If {op.name}: inlined the {'then' if cond.ravel()[0] else 'else'} branch")
    return result


def _inline(graph: Graph, op: Op, branch: Graph) -> bool:
    if any(o.subgraphs for o in branch.ops) or len(branch.outputs) != op.n_outputs:
        return False
    # A runtime-shaped branch output may be accepted where its static shape is not
    # (Range wants scalars): inline only when the If's outputs have the branch's ranks.
    for out, inner in zip(op.outputs, branch.outputs, strict=True):
        if out is not None and (out.rank is None or out.rank != inner.rank):
            return False
    mapping: dict[int, Value] = {}
    for name, v in branch.captured.items():
        outer = graph.resolve(name)
        if outer is None:
            return False
        mapping[id(v)] = outer
    for v in branch.initializers.values():
        if v.const is None:
            return False
        mapping[id(v)] = graph.add_initializer(v.name, v.const)
    for inner in branch.topological_ops():
        outs = [None if v is None else graph.new_value(v.name, v.dtype, v.shape)
                for v in inner.outputs]
        new = graph.add_op(inner.op_type, [None if v is None else mapping[id(v)]
                                           for v in inner.inputs],
                           outputs=outs, domain=inner.domain, name=inner.name, before=op)
        new.attrs = dict(inner.attrs)
        for v, n in zip(inner.outputs, outs, strict=True):
            if v is not None:
                mapping[id(v)] = n
    for out, inner_out in zip(op.outputs, branch.outputs, strict=True):
        if out is None:
            continue
        src = mapping[id(inner_out)]
        if src.dtype is None:
            src.dtype, src.shape = out.dtype, out.shape
        graph.replace_all_uses(out, src)
    graph.remove_op(op)
    return True


__all__ = ["dce", "noop", "cse", "dedup", "inline_if", "static_shape"]
