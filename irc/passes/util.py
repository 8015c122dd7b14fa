"""Small helpers the passes share: constant lookup, single-use tests, rewiring."""

from __future__ import annotations

import numpy as np
from onnx import helper

from ..ir import Graph, Op, Tensor, Value

STANDARD = ("", "ai.onnx")


def is_std(op: Op, *types: str) -> bool:
    """True if ``op`` is a standard-domain op of one of ``types``."""
    return op.domain in STANDARD and op.op_type in types


def const(graph: Graph, value: Value | None) -> np.ndarray | None:
    """The compile-time data of ``value`` (None if unknown or not a tensor)."""
    if value is None:
        return None
    try:
        if value.const is not None and value in graph.inputs and weights_in_inputs(graph):
            return value.const.numpy()
        return graph.constant_value(value)
    except Exception:  # undecodable exotic tensor: treat as unknown
        return None


def root_of(graph: Graph) -> Graph:
    while graph.parent is not None:
        graph = graph.parent
    return graph


def weights_in_inputs(graph: Graph) -> bool:
    """Before IR version 4 every initializer had to be listed as an input too: there
    an initializer-backed input is a weight, not an overridable default."""
    info = root_of(graph).model
    return info is not None and info.ir_version < 4


def only_consumer(graph: Graph, value: Value) -> Op | None:
    """The single op reading ``value`` once, if ``value`` is not a graph output."""
    uses = graph.uses(value)
    if len(uses) != 1 or graph.is_output(value):
        return None
    op, slot = uses[0]
    return op if slot >= 0 else None


def producer_of(graph: Graph, value: Value | None, *types: str) -> Op | None:
    if value is None:
        return None
    op = graph.producer(value)
    return op if op is not None and is_std(op, *types) else None


def static_shape(value: Value | None) -> tuple[int, ...] | None:
    """The value's shape if every dim is a known int."""
    if value is None or value.shape is None:
        return None
    if all(isinstance(d, int) and d >= 0 for d in value.shape):
        return tuple(value.shape)
    return None


def same_shape(a: Value, b: Value) -> bool:
    """Shapes known and equal dim by dim (symbols compared by name; unknown never equal)."""
    if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
        return False
    return all(x is not None and x == y and not (isinstance(x, int) and x < 0)
               for x, y in zip(a.shape, b.shape, strict=True))


def np_dtype(elem_type: int | None):
    return None if not elem_type else helper.tensor_dtype_to_np_dtype(elem_type)


def bypass(graph: Graph, op: Op, src: Value, out: Value | None = None) -> bool:
    """Replace ``op``'s output by ``src`` and remove ``op``. False if not possible.

    Not done when the output is a graph output that ``src`` cannot take over
    (src is an input, initializer, capture or another output): that would need
    an Identity, which is what we are removing.
    """
    out = out if out is not None else op.output(0)
    if out is None:
        return False
    if graph.is_output(out) and (graph.producer(src) is None or graph.is_output(src)):
        return False
    if any(v is not None and v is not out and (graph.uses(v) or graph.is_output(v))
           for v in op.outputs):
        return False
    graph.replace_all_uses(out, src)
    graph.remove_op(op)
    return True


def remove_dead_op(graph: Graph, op: Op) -> None:
    """Remove an op whose outputs nobody reads."""
    graph.remove_op(op)


def as_tensor(array: np.ndarray) -> Tensor:
    """A Tensor of ``array`` that keeps 0-d arrays 0-d (np.ascontiguousarray would not)."""
    return Tensor(array=np.require(array, requirements="C"))


def new_const(graph: Graph, hint: str, array: np.ndarray) -> Value:
    return graph.add_initializer(graph.unique_name(hint), as_tensor(array))


def attr_ints(op: Op, name: str, default=None) -> list[int] | None:
    v = op.attr(name, default)
    return None if v is None else [int(x) for x in v]


def attr_str(op: Op, name: str, default: str = "") -> str:
    """A string attribute as str (onnx keeps them as bytes)."""
    v = op.attr(name, default)
    return v.decode() if isinstance(v, bytes) else str(v)
