"""The IR: a dataflow graph of op nodes and value nodes in a networkx MultiDiGraph.

Edges run value -> op (the op reads the value at input ``slot``) and op -> value
(the op writes the value at output ``slot``). Use-def chains are therefore the
graph itself. An op that owns subgraphs (If/Loop/Scan) also gets an edge with
``slot = CAPTURE`` from every outer value its subgraphs read, so dead-code
analysis and topological order see those hidden uses too.

Passes use the methods of :class:`Graph`; ``graph.nx`` stays public for
analyses networkx already does well.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, helper

from .tensor import Tensor

CAPTURE = -1
"""Input slot of the edge that records a subgraph's read of an outer-scope value."""

Dim = int | str | None
"""A dimension: a size, a symbol kept by name, or unknown."""

_order = itertools.count()


class Value:
    """A tensor (or sequence/optional/map) flowing between ops.

    ``shape`` is a tuple of dims, or None when even the rank is unknown.
    ``const`` holds the data of initializers and folded constants.
    """

    __slots__ = (
        "name", "dtype", "shape", "const", "graph", "doc_string", "type_proto",
        "_orig_type", "sparse", "order", "in_value_info", "extra",
    )

    def __init__(self, name: str, dtype: int | None = None, shape: Sequence[Dim] | None = None,
                 const: Tensor | None = None):
        self.name = name
        self.dtype = dtype
        self.shape = tuple(shape) if shape is not None else None
        self.const = const
        self.graph: Graph | None = None
        self.doc_string = ""
        # For non-tensor types (sequence, optional, map, sparse) the TypeProto itself.
        self.type_proto = None
        # (dtype, shape, TypeProto) as loaded: reused on save while unchanged, so
        # dim denotations and other details survive the round trip.
        self._orig_type = None
        self.sparse = None  # SparseTensorProto of a sparse initializer
        self.order = next(_order)
        self.in_value_info = False
        self.extra = None  # ValueInfoProto with the fields the IR does not model

    def __repr__(self) -> str:
        return f"Value({self.name!r}, dtype={self.dtype}, shape={self.shape})"

    @property
    def is_initializer(self) -> bool:
        return self.graph is not None and self.name in self.graph.initializers

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)


@dataclass(eq=False)
class Attr:
    """An attribute. ``value`` is a python value, a Tensor, a Graph or a list of Graphs."""

    name: str
    type: int  # AttributeProto.AttributeType
    value: Any
    doc_string: str = ""
    ref_attr_name: str = ""
    extra: Any = None  # AttributeProto fields the IR does not model


class Op:
    """An operator node. Its inputs and outputs are read through its graph."""

    __slots__ = ("op_type", "domain", "name", "attrs", "doc_string", "overload", "graph",
                 "n_inputs", "n_outputs", "order", "extra")

    def __init__(self, op_type: str, domain: str = "", name: str = "",
                 attrs: dict[str, Attr] | None = None):
        self.op_type = op_type
        self.domain = domain
        self.name = name
        self.attrs: dict[str, Attr] = attrs or {}
        self.doc_string = ""
        self.overload = ""
        self.graph: Graph | None = None
        self.n_inputs = 0
        self.n_outputs = 0
        self.order = next(_order)
        self.extra: NodeProto | None = None  # fields the IR does not model (metadata_props...)

    def __repr__(self) -> str:
        return f"Op({self.op_type!r}, name={self.name!r})"

    # -- attributes -------------------------------------------------------
    def attr(self, name: str, default: Any = None) -> Any:
        """The attribute's python value, or ``default`` when absent."""
        a = self.attrs.get(name)
        return default if a is None else a.value

    def set_attr(self, name: str, value: Any) -> None:
        """Set an attribute, inferring its ONNX type from the python value."""
        if isinstance(value, Graph):
            self.attrs[name] = Attr(name, AttributeProto.GRAPH, value)
            value.parent = self.graph
            return
        if isinstance(value, Tensor):
            self.attrs[name] = Attr(name, AttributeProto.TENSOR, value)
            return
        if isinstance(value, np.ndarray):
            self.attrs[name] = Attr(name, AttributeProto.TENSOR, Tensor.from_array(value))
            return
        proto = helper.make_attribute(name, value)
        self.attrs[name] = Attr(name, proto.type, _attr_value(proto))

    # -- dataflow -----------------------------------------------------------
    @property
    def inputs(self) -> list[Value | None]:
        """Inputs by slot; None for an omitted optional input."""
        result: list[Value | None] = [None] * self.n_inputs
        for value, slot in _edges(self.graph.nx._pred[self]):
            if slot != CAPTURE:
                result[slot] = value
        return result

    @property
    def outputs(self) -> list[Value | None]:
        result: list[Value | None] = [None] * self.n_outputs
        for value, slot in _edges(self.graph.nx._succ[self]):
            result[slot] = value
        return result

    def input(self, slot: int) -> Value | None:
        for value, s in _edges(self.graph.nx._pred[self]):
            if s == slot:
                return value
        return None

    def output(self, slot: int = 0) -> Value | None:
        for value, s in _edges(self.graph.nx._succ[self]):
            if s == slot:
                return value
        return None

    @property
    def subgraphs(self) -> list[Graph]:
        graphs: list[Graph] = []
        for a in self.attrs.values():
            if a.type == AttributeProto.GRAPH:
                graphs.append(a.value)
            elif a.type == AttributeProto.GRAPHS:
                graphs.extend(a.value)
        return graphs


def _edges(adjacency: dict) -> Iterator[tuple[Any, int]]:
    """(neighbour, slot) of every edge in one node's networkx adjacency dict.

    Passes read inputs and outputs constantly; walking networkx's dicts directly
    avoids building a report view per call (the hottest path of a pass run)."""
    for neighbour, keyed in adjacency.items():
        for data in keyed.values():
            yield neighbour, data["slot"]


def _attr_value(proto: AttributeProto) -> Any:
    """Python value of a non-graph, non-tensor attribute."""
    return helper.get_attribute_value(proto)


@dataclass
class ModelInfo:
    """Model-level data around the main graph (None on subgraphs)."""

    ir_version: int = 10
    opset_imports: dict[str, int] = field(default_factory=lambda: {"": 18})
    producer_name: str = "irc"
    producer_version: str = ""
    domain: str = ""
    model_version: int = 0
    doc_string: str = ""
    metadata_props: dict[str, str] = field(default_factory=dict)
    # Model-local functions, training info and any future field, kept verbatim.
    extra: ModelProto | None = None
    # The opset_import entries as loaded, reused on save while opset_imports is unchanged.
    loaded_opsets: tuple[dict[str, int], list] | None = None


class Graph:
    """A dataflow graph. Subgraphs of If/Loop/Scan are Graphs whose ``parent`` is set."""

    def __init__(self, name: str = "main", parent: Graph | None = None):
        self.nx = nx.MultiDiGraph()
        self.name = name
        self.doc_string = ""
        self.parent = parent
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.initializers: dict[str, Value] = {}
        self.values: dict[str, Value] = {}
        # Outer-scope values this (sub)graph reads, by name: placeholders with no producer.
        self.captured: dict[str, Value] = {}
        self._ops: dict[Op, None] = {}  # every op node, so counting and listing skip the values
        self.model: ModelInfo | None = None
        self.extra: GraphProto | None = None  # fields the IR does not model

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, ops={self.num_ops}, values={len(self.values)})"

    # -- lookup -------------------------------------------------------------
    @property
    def num_ops(self) -> int:
        return len(self._ops)

    @property
    def ops(self) -> list[Op]:
        """Ops in insertion order (not necessarily topological)."""
        return sorted(self._ops, key=lambda o: o.order)

    def add_op_node(self, op: Op) -> Op:
        """Put an already built op into the graph, unconnected (for readers like from_onnx)."""
        op.graph = self
        self.nx.add_node(op)
        self._ops[op] = None
        return op

    def value(self, name: str) -> Value:
        return self.values[name]

    def producer(self, value: Value) -> Op | None:
        """The op that writes ``value``; None for inputs, initializers and captures."""
        for op in self.nx._pred[value]:
            return op
        return None

    def uses(self, value: Value) -> list[tuple[Op, int]]:
        """Every (op, input slot) that reads ``value``; slot CAPTURE for subgraph reads."""
        return list(_edges(self.nx._succ[value]))

    def consumers(self, value: Value) -> list[Op]:
        """Distinct ops that read ``value`` (in insertion order)."""
        return sorted({op for op, _ in self.uses(value)}, key=lambda o: o.order)

    def is_output(self, value: Value) -> bool:
        return any(v is value for v in self.outputs)

    def constant_value(self, value: Value | None) -> np.ndarray | None:
        """The value's data if known at compile time (initializer or Constant output)."""
        if value is None:
            return None
        if value.const is not None and value not in self.inputs:
            return value.const.numpy()
        op = self.producer(value)
        if op is not None and op.op_type == "Constant" and op.domain in ("", "ai.onnx"):
            return _constant_op_value(op)
        return None

    def topological_ops(self) -> list[Op]:
        """Ops in a topological order that keeps the original order where it can.

        A heap-driven Kahn sort over op-to-op dependencies (values are transparent:
        an op is ready once every producer of its inputs, captures included, is
        placed); among ready ops the earliest inserted goes first.
        """
        pred = self.nx._pred
        waiting: dict[Op, int] = {}
        users: dict[Op, list[Op]] = {}
        for op in self._ops:
            deps = {producer for value in pred[op] for producer in pred[value]}
            waiting[op] = len(deps)
            for producer in deps:
                users.setdefault(producer, []).append(op)
        heap = [(op.order, id(op), op) for op, n in waiting.items() if not n]
        heapq.heapify(heap)
        order: list[Op] = []
        while heap:
            op = heapq.heappop(heap)[2]
            order.append(op)
            for user in users.get(op, ()):
                waiting[user] -= 1
                if not waiting[user]:
                    heapq.heappush(heap, (user.order, id(user), user))
        if len(order) != len(waiting):
            stuck = sorted((op for op, n in waiting.items() if n), key=lambda o: o.order)
            raise ValueError(f"graph {self.name!r} has a cycle through {stuck[0]}")
        return order

    def all_graphs(self) -> Iterator[Graph]:
        """This graph and every nested subgraph, depth first."""
        yield self
        for op in self.ops:
            if op.attrs:
                for sub in op.subgraphs:
                    yield from sub.all_graphs()

    # -- names --------------------------------------------------------------
    def _name_taken(self, name: str) -> bool:
        g: Graph | None = self
        while g is not None:
            if name in g.values:
                return True
            g = g.parent
        return False

    def unique_name(self, hint: str) -> str:
        hint = hint or "v"
        if not self._name_taken(hint):
            return hint
        for i in itertools.count(1):
            candidate = f"{hint}_{i}"
            if not self._name_taken(candidate):
                return candidate
        raise AssertionError("unreachable")

    # -- building -----------------------------------------------------------
    def add_value(self, value: Value) -> Value:
        if value.name in self.values:
            raise ValueError(f"value {value.name!r} already exists in graph {self.name!r}")
        value.graph = self
        self.values[value.name] = value
        self.nx.add_node(value)
        return value

    def new_value(self, hint: str, dtype: int | None = None,
                  shape: Sequence[Dim] | None = None) -> Value:
        return self.add_value(Value(self.unique_name(hint), dtype, shape))

    def add_initializer(self, name_hint: str, array: np.ndarray | Tensor) -> Value:
        """A new initializer holding ``array``; returns its value."""
        tensor = array if isinstance(array, Tensor) else Tensor.from_array(array)
        value = self.new_value(name_hint, tensor.elem_type, tensor.dims)
        value.const = tensor
        self.initializers[value.name] = value
        return value

    def add_input(self, value: Value) -> Value:
        if value.name not in self.values:
            self.add_value(value)
        self.inputs.append(value)
        return value

    def capture(self, name: str) -> Value:
        """The placeholder for outer-scope value ``name`` read by this subgraph."""
        if name in self.captured:
            return self.captured[name]
        value = self.add_value(Value(name))
        self.captured[name] = value
        return value

    def add_op(self, op_type: str, inputs: Sequence[Value | None], num_outputs: int = 1, *,
               outputs: Sequence[Value | str | None] | None = None, domain: str = "",
               name: str = "", attrs: dict[str, Any] | None = None,
               before: Op | None = None) -> Op:
        """Insert an op. Outputs are new values (named from ``outputs`` strings or the op).

        ``before`` gives the new op an order just before that op, so it prints
        where a reader expects it.
        """
        op = Op(op_type, domain, name)
        if before is not None:
            # Between ``before`` and its predecessor, later insertions after earlier ones.
            op.order = before.order - 0.5 + op.order * 1e-9
        self.add_op_node(op)
        op.n_inputs = len(inputs)
        for slot, value in enumerate(inputs):
            if value is not None:
                self._connect_input(value, op, slot)
        specs = list(outputs) if outputs is not None else [None] * num_outputs
        op.n_outputs = len(specs)
        base = name or op_type.lower()
        for slot, spec in enumerate(specs):
            if spec is None and outputs is not None:
                continue  # an omitted optional output
            value = spec if isinstance(spec, Value) else None
            if value is None:
                value = self.new_value(spec if isinstance(spec, str) else f"{base}_out{slot}")
            elif value.name not in self.values:
                self.add_value(value)
            self.nx.add_edge(op, value, slot=slot)
        for key, val in (attrs or {}).items():
            op.set_attr(key, val)
        for sub in op.subgraphs:
            sub.parent = self
            self._link_captures(op, sub)
        return op

    insert_op = add_op

    def _connect_input(self, value: Value, op: Op, slot: int) -> None:
        if value.graph is not self:
            raise ValueError(f"value {value.name!r} belongs to another graph; capture it first")
        self.nx.add_edge(value, op, slot=slot)

    def _link_captures(self, op: Op, sub: Graph) -> None:
        """Record CAPTURE edges from this graph's values into ``op`` for its subgraph reads."""
        for name in sub.free_names():
            outer = self.resolve(name)
            if outer is not None and not any(
                s == CAPTURE and u is outer for u, _, s in self.nx.in_edges(op, data="slot")
            ):
                self.nx.add_edge(outer, op, slot=CAPTURE)

    def resolve(self, name: str) -> Value | None:
        """The value ``name`` as seen from this graph: own, or captured from a parent."""
        if name in self.values:
            return self.values[name]
        if self.parent is not None and self.parent._name_taken(name):
            return self.capture(name)
        return None

    def free_names(self) -> set[str]:
        """Names this graph (or its nested subgraphs) read from outside itself."""
        names = set(self.captured)
        for op in self.ops:
            for sub in op.subgraphs:
                names |= {n for n in sub.free_names() if n not in self.values or n in self.captured}
        return names

    # -- editing ------------------------------------------------------------
    def set_input(self, op: Op, slot: int, value: Value | None) -> None:
        """Make ``op`` read ``value`` at ``slot`` (None omits an optional input)."""
        for src, _, key, s in list(self.nx.in_edges(op, keys=True, data="slot")):
            if s == slot:
                self.nx.remove_edge(src, op, key)
        if slot >= op.n_inputs:
            op.n_inputs = slot + 1
        if value is not None:
            self._connect_input(value, op, slot)
        while op.n_inputs and op.input(op.n_inputs - 1) is None and value is None:
            op.n_inputs -= 1  # drop trailing omitted inputs

    def replace_all_uses(self, old: Value, new: Value) -> None:
        """Every read of ``old`` (ops, subgraphs, graph outputs) now reads ``new``.

        Graph outputs keep their names: when ``old`` is an output, ``new`` takes
        over its name if it is a plain intermediate, else an Identity keeps it.
        """
        if old is new:
            return
        for _, op, key, slot in list(self.nx.out_edges(old, keys=True, data="slot")):
            self.nx.remove_edge(old, op, key)
            if slot == CAPTURE:
                for sub in op.subgraphs:
                    sub._rename_capture(old.name, new.name)
                if not any(s == CAPTURE and u is new for u, _, s in self.nx.in_edges(op, data="slot")):
                    self.nx.add_edge(new, op, slot=CAPTURE)
            else:
                self.nx.add_edge(new, op, slot=slot)
        if self.is_output(old):
            self._keep_output_name(old, new)

    def _keep_output_name(self, old: Value, new: Value) -> None:
        index = next(i for i, v in enumerate(self.outputs) if v is old)
        plain = (self.producer(new) is not None and not self.is_output(new)
                 and new.name not in self.initializers and new.name not in self.captured)
        name = old.name
        if new.dtype is None and new.type_proto is None:  # an output must stay typed
            new.dtype, new.shape = old.dtype, old.shape
        self.rename(old, self.unique_name(name + "_replaced"))
        if plain:
            self.rename(new, name)
            self.outputs[index] = new
            return
        keep = self.add_value(Value(name, new.dtype, new.shape))
        self.add_op("Identity", [new], outputs=[keep])
        self.outputs[index] = keep

    def rename(self, value: Value, name: str) -> None:
        """Rename a value (and captures of it in subgraphs)."""
        if name == value.name:
            return
        if name in self.values:
            raise ValueError(f"cannot rename {value.name!r}: {name!r} exists")
        old = value.name
        del self.values[old]
        value.name = name
        self.values[name] = value
        if old in self.initializers:
            self.initializers[name] = self.initializers.pop(old)
        for op, slot in self.uses(value):
            if slot == CAPTURE:
                for sub in op.subgraphs:
                    sub._rename_capture(old, name)

    def _rename_capture(self, old: str, new: str) -> None:
        if old in self.captured:
            value = self.captured.pop(old)
            del self.values[old]
            value.name = new
            if new in self.captured:  # already captured under the new name: merge
                self.replace_all_uses(value, self.captured[new])
                self.nx.remove_node(value)
            else:
                self.captured[new] = value
                self.values[new] = value
        for op in self.ops:
            for sub in op.subgraphs:
                sub._rename_capture(old, new)

    def remove_op(self, op: Op, *, keep_outputs: bool = False) -> None:
        """Remove an op; its outputs go too unless ``keep_outputs`` (they must be unused)."""
        outs = [v for v in op.outputs if v is not None]
        self.nx.remove_node(op)
        self._ops.pop(op, None)
        if keep_outputs:
            return
        for value in outs:
            if self.nx.out_degree(value) or self.is_output(value):
                raise ValueError(f"cannot remove {op}: output {value.name!r} is still used")
            self.remove_value(value)

    def remove_value(self, value: Value) -> None:
        if self.nx.degree(value):
            raise ValueError(f"value {value.name!r} is still connected")
        self.nx.remove_node(value)
        self.values.pop(value.name, None)
        self.initializers.pop(value.name, None)
        self.captured.pop(value.name, None)
        value.graph = None

    def make_constant(self, value: Value, array: np.ndarray | Tensor) -> None:
        """Turn a computed value into an initializer holding ``array`` (its producer is cut)."""
        op = self.producer(value)
        if op is not None:
            self.nx.remove_edge(op, value)
        tensor = array if isinstance(array, Tensor) else Tensor.from_array(array)
        value.const = tensor
        value.dtype = tensor.elem_type
        value.shape = tensor.dims
        self.initializers[value.name] = value

    # -- statistics ---------------------------------------------------------
    def op_histogram(self) -> dict[str, int]:
        hist: dict[str, int] = {}
        for op in self.ops:
            key = op.op_type if op.domain in ("", "ai.onnx") else f"{op.domain}:{op.op_type}"
            hist[key] = hist.get(key, 0) + 1
        return dict(sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])))

    def parameter_stats(self) -> tuple[int, int]:
        """(element count, bytes) of all initializers, without decoding them."""
        count = sum(v.const.size for v in self.initializers.values() if v.const is not None)
        size = sum(v.const.nbytes for v in self.initializers.values() if v.const is not None)
        return count, size


def _constant_op_value(op: Op) -> np.ndarray | None:
    for key, a in op.attrs.items():
        if key == "value":
            return a.value.numpy()
        if key in ("value_float", "value_int"):
            return np.array(a.value, dtype=np.float32 if key == "value_float" else np.int64)
        if key in ("value_floats", "value_ints"):
            return np.array(a.value, dtype=np.float32 if key == "value_floats" else np.int64)
        if key == "value_string":
            return np.array(a.value, dtype=object)
        if key == "value_strings":
            return np.array(a.value, dtype=object)
    return None
