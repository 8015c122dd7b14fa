"""What an op handler sees: its node, typed Rust expressions for its inputs, literal helpers."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from onnx import TensorProto

from ..sanitize import rust_str

if TYPE_CHECKING:
    from ....ir import Op, Value
    from ..emitter import FunctionBuilder

RUST_TYPES = {
    TensorProto.FLOAT16: "rt::F16",
    TensorProto.FLOAT: "f32", TensorProto.DOUBLE: "f64", TensorProto.INT8: "i8",
    TensorProto.INT16: "i16", TensorProto.INT32: "i32", TensorProto.INT64: "i64",
    TensorProto.UINT8: "u8", TensorProto.UINT16: "u16", TensorProto.UINT32: "u32",
    TensorProto.UINT64: "u64", TensorProto.BOOL: "bool",
}
FLOATS = {"f32", "f64", "rt::F16"}
INTS = {"i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"}
NUMS = FLOATS | INTS

Handler = Callable[["OpCtx"], str]
HANDLERS: dict[str, Handler] = {}


class Unsupported(Exception):
    """This node cannot be emitted; the message says which part (dtype, attribute...)."""


def op(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler for ONNX op types: `Conv` (default domain), `irc.ConvRelu` (domain `irc`),
    or a name pattern ending in `*` (`irc.Elementwise_*`: every op whose name starts so)."""
    def register(fn: Handler) -> Handler:
        for name in names:
            HANDLERS[name] = fn
        return fn
    return register


def lit(value, rtype: str) -> str:
    """A Rust literal of element type ``rtype``."""
    if rtype == "bool":
        return "true" if bool(value) else "false"
    if rtype == "rt::F16":
        return f"rt::F16::from_f64({float_lit(float(value))})"
    if rtype in FLOATS:
        v = float(value)
        if math.isnan(v):
            return f"{rtype}::NAN"
        if math.isinf(v):
            return f"{rtype}::{'INFINITY' if v > 0 else 'NEG_INFINITY'}"
        text = str(np.float32(v)) if rtype == "f32" else repr(v)
        if "." not in text and "e" not in text:
            text += ".0"
        return f"{text}_{rtype}"
    return f"{int(value)}_{rtype}"


def float_lit(v: float) -> str:
    """An f64 literal for an attribute (alpha, epsilon...)."""
    v = float(v)
    if math.isnan(v):
        return "f64::NAN"
    if math.isinf(v):
        return "f64::INFINITY" if v > 0 else "f64::NEG_INFINITY"
    return repr(v) if ("." in repr(v) or "e" in repr(v)) else repr(v) + ".0"


def slice_lit(values, suffix: str = "") -> str:
    """`&[a, b, c]` (typed by the callee)."""
    return "&[" + ", ".join(f"{int(v)}{suffix}" for v in values) + "]"


class OpCtx:
    """The view of one node that a handler works with."""

    def __init__(self, builder: FunctionBuilder, node: Op, opset: int):
        self.b = builder
        self.op = node
        self.opset = opset
        self.multi: str | None = None  # "tuple" or "vec" when the expression yields several outputs
        self.n_results: int | None = None
        self.no_try = False  # the expression is a value, not a Result  # tuple arity when it differs from the node's output count
        self.ins: list[Value | None] = node.inputs
        self.outs: list[Value | None] = node.outputs
        self.moved: set[Value] = set()  # inputs the expression takes by value (see `take`)

    # -- attributes and operands ------------------------------------------
    def a(self, name: str, default=None):
        return self.op.attr(name, default)

    def s(self, name: str, default: str, allowed: set[str] | None = None) -> str:
        """A string attribute, checked against its allowed values (never pasted unchecked)."""
        value = self.a(name, default)
        value = value.decode() if isinstance(value, bytes) else str(value)
        if allowed is not None and value not in allowed:
            raise Unsupported(f"attribute {name}={value!r}")
        return value

    def has(self, i: int) -> bool:
        return i < len(self.ins) and self.ins[i] is not None

    def x(self, i: int) -> str:
        """Expression of type `&ArrayD<T>` for input ``i``."""
        if not self.has(i):
            raise Unsupported(f"missing input {i}")
        return self.b.ref(self.ins[i])

    def can_take(self, i: int) -> bool:
        """Whether input ``i`` is a local that dies at this node and is read only once by it."""
        if not self.has(i):
            return False
        v = self.ins[i]
        return (v in self.b.names and self.b.last_use.get(v) is self.op
                and sum(1 for u in self.ins if u is v) == 1)

    def take(self, i: int) -> str | None:
        """The owned local (an `ArrayD<T>` moved into the call) for input ``i`` when it dies here.

        Handlers use it to compute in place: the buffer of a dead intermediate becomes the
        output instead of a fresh allocation. ``None`` when the input lives on (use ``x``).
        """
        if not self.can_take(i):
            return None
        self.moved.add(self.ins[i])
        return self.b.names[self.ins[i]]

    def t(self, i: int) -> str:
        if not self.has(i):
            raise Unsupported(f"missing input {i}")
        return self.b.rtype(self.ins[i])

    def ot(self, i: int = 0) -> str:
        v = self.outs[i] if i < len(self.outs) else None
        if v is None:
            raise Unsupported(f"missing output {i}")
        return self.b.rtype(v)

    def const(self, i: int) -> np.ndarray | None:
        return self.b.const(self.ins[i]) if self.has(i) else None

    def ints(self, i: int) -> list[int] | None:
        c = self.const(i)
        return None if c is None else [int(v) for v in np.asarray(c).reshape(-1)]

    def ints_expr(self, i: int) -> str:
        """Expression of type `&[i64]` for an integer input: a literal when constant."""
        values = self.ints(i)
        if values is not None:
            return slice_lit(values) + ("[..]" if not values else "")
        self.need(self.t(i) in INTS, "non-integer shape operand")
        return f"&rt::to_i64_vec({self.x(i)})"

    def opt_ints_expr(self, i: int) -> str:
        """Expression of type `Option<&[i64]>` for an optional integer input."""
        if not self.has(i):
            return "None"
        values = self.ints(i)
        if values is not None:
            return f"Some(&{slice_lit(values)[1:]}[..])"
        return f"Some(&rt::to_i64_vec({self.x(i)})[..])"

    def scalar_expr(self, i: int, rtype: str | None = None) -> str:
        """Expression of element type for a scalar input (a literal when constant)."""
        c = self.const(i)
        rtype = rtype or self.t(i)
        if c is not None and np.asarray(c).size >= 1:
            return lit(np.asarray(c).reshape(-1)[0], rtype)
        return f"rt::scalar({self.x(i)})?"

    def need(self, cond: bool, reason: str) -> None:
        if not cond:
            raise Unsupported(reason)

    def types(self, i: int, allowed: set[str]) -> str:
        t = self.t(i)
        if t not in allowed:
            raise Unsupported(f"dtype {t} of input {i}")
        return t

    def attr_list(self, name: str, default=()) -> list:
        return list(self.a(name, default) or default)

    def string(self, text: str) -> str:
        return rust_str(text)
