"""The Rust emitter: IR graph -> Rust source of a model (struct, weights, forward).

Two phases share one walk over the nodes: every node is tried, every failure is
collected, and only a model with none at all produces source. That gives the
whole-model diagnostic (every unsupported op at once) for free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from onnx import helper

from ...errors import UnsupportedError
from ...ir import Graph, Value
from .batch import BatchSplit, batch_split
from .emitter_util import indent
from .ops import HANDLERS, OpCtx, Unsupported
from .ops.base import RUST_TYPES
from .sanitize import Namer, doc, rust_str


@dataclass
class UnsupportedNode:
    """One node the backend cannot emit, with what exactly is missing."""

    node: str
    op_type: str
    domain: str
    opset: int
    dtypes: str
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


class EmitError(UnsupportedError):
    """Some nodes cannot be emitted; ``items`` lists every one of them."""

    def __init__(self, items: list[UnsupportedNode]):
        self.items = items
        lines = [f"{len(items)} unsupported node(s):"]
        lines += [f"  {i.node} ({i.domain + '.' if i.domain else ''}{i.op_type} opset {i.opset}, "
                  f"dtypes {i.dtypes}): {i.reason}" for i in items[:50]]
        super().__init__("\n".join(lines))


@dataclass
class Weight:
    field: str
    array: np.ndarray
    source: str
    # False when only load-time preparations read the tensor (no `ArrayD` field is kept).
    raw: bool = True


@dataclass
class Prepared:
    """A struct field computed in `from_bytes` from a weight (e.g. GEMM weights packed once)."""

    field: str
    rust_type: str
    weight: Weight
    init: str  # Rust expression; `{}` stands for the weight as an owned `ArrayD`


@dataclass
class ModelSource:
    """Everything the crate writer needs about one emitted model."""

    struct: str
    body: str
    weights: list[Weight] = field(default_factory=list)
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    output_files: list[str] = field(default_factory=list)


def elem_type_of(array: np.ndarray) -> int:
    return helper.np_dtype_to_tensor_dtype(array.dtype)


class FunctionBuilder:
    """Builds `forward`: names, constants turned into weights, one statement per node.

    A child builder emits the body of a Loop or an If branch: it shares the
    names, weights and fields of its parent and resolves the values its
    subgraph captures through the parent.
    """

    def __init__(self, graph: Graph, parent: FunctionBuilder | None = None):
        self.graph = graph
        self.parent = parent
        self.emitter = parent.emitter if parent else None
        self.locals = parent.locals if parent else Namer({"self", "rt", "w", "inputs", "bytes", "path"})
        self.fields = parent.fields if parent else Namer()
        self.names: dict[Value, str] = {}
        self.params: dict[Value, str] = {}
        self.consts: dict[Value, np.ndarray] = {}
        self.weight_fields: dict[Value, str] = parent.weight_fields if parent else {}
        self.weights: list[Weight] = parent.weights if parent else []
        self.prepared_fields: dict[tuple[Value, str], Prepared] = parent.prepared_fields if parent else {}
        # The memory plan: the op after which each local is dead, so `forward` frees (or
        # reuses, see `OpCtx.take`) every intermediate as soon as nothing reads it anymore.
        self.last_use: dict[Value, object] = {}
        # Values whose op emitted no statement: its only reader computes it (ops/conv.py,
        # a depthwise layer fused into the pointwise layer after it): value -> call parts.
        self.deferred: dict[Value, dict] = {}

    def child(self, graph: Graph) -> FunctionBuilder:
        return FunctionBuilder(graph, self)

    def outer(self, v: Value) -> tuple[FunctionBuilder, Value] | None:
        """The builder and value an outer-scope read (a capture placeholder) refers to."""
        if self.parent is None or self.graph.captured.get(v.name) is not v:
            return None
        p = self.parent
        while p is not None:
            found = p.graph.values.get(v.name)
            if found is not None and p.graph.captured.get(v.name) is not found:
                return p, found
            p = p.parent
        return None

    # -- operands ---------------------------------------------------------
    def const(self, v: Value | None) -> np.ndarray | None:
        if v is None:
            return None
        up = self.outer(v)
        if up is not None:
            return up[0].const(up[1])
        if v in self.consts:
            return self.consts[v]
        if v in self.params or v in self.names:
            return None
        c = self.graph.constant_value(v)
        if c is not None:
            self.consts[v] = np.asarray(c)
        return self.consts.get(v)

    @staticmethod
    def rtype_of_array(array: np.ndarray) -> str:
        return RUST_TYPES[elem_type_of(array)]

    def rtype(self, v: Value) -> str:
        up = self.outer(v)
        if up is not None:
            return up[0].rtype(up[1])
        c = self.const(v)
        dtype = elem_type_of(c) if c is not None else v.dtype
        if dtype not in RUST_TYPES:
            name = helper.tensor_dtype_to_string(dtype) if dtype else "unknown"
            raise Unsupported(f"dtype {name.replace('TensorProto.', '')} of value {v.name!r}")
        return RUST_TYPES[dtype]

    def ref(self, v: Value) -> str:
        if v in self.params:
            return self.params[v]
        if v in self.names:
            return f"&{self.names[v]}"
        up = self.outer(v)
        if up is not None:
            return up[0].ref(up[1])
        c = self.const(v)
        if c is None:
            raise Unsupported(f"value {v.name!r} is not computed before use")
        self.rtype(v)
        self._weight(v, c).raw = True
        return f"&self.{self.weight_fields[v]}"

    def _weight(self, v: Value, c: np.ndarray) -> Weight:
        """The weights.bin entry of constant ``v`` (created without a raw field)."""
        if v not in self.weight_fields:
            name = self.fields.fresh(v.name, "w")
            self.weight_fields[v] = name
            # np.ascontiguousarray would turn a 0-d scalar into shape (1,).
            self.weights.append(Weight(name, np.array(c, order="C"), v.name, raw=False))
        return next(wt for wt in self.weights if wt.field == self.weight_fields[v])

    def prepared(self, v: Value, kind: str, rust_type: str, init: str) -> str | None:
        """`&self.<field>` holding constant ``v`` prepared once at load, e.g. packed GEMM weights.

        ``init`` is the Rust expression building the ``rust_type`` value, with `{}` for the
        weight as an owned `ArrayD` (it may use `?`). One field per (value, ``kind``); the raw
        `ArrayD` field exists only if something also reads ``v`` through :meth:`ref`.
        ``None`` when ``v`` is not a constant of this scope (callers then use ``ref``).
        """
        if v in self.params or v in self.names or self.outer(v) is not None:
            return None
        c = self.const(v)
        if c is None:
            return None
        key = (v, kind)
        if key not in self.prepared_fields:
            weight = self._weight(v, c)
            field_name = self.fields.fresh(f"{weight.field}_{kind}", "w")
            self.prepared_fields[key] = Prepared(field_name, rust_type, weight, init)
        return f"&self.{self.prepared_fields[key].field}"


def _opset(graph: Graph) -> int:
    imports = graph.model.opset_imports if graph.model else {}
    return int(imports.get("", imports.get("ai.onnx", 21)))


def live_ops(graph: Graph) -> list:
    """Ops that outputs depend on, in topological order."""
    needed: set = set(graph.outputs)
    ops = graph.topological_ops()
    live = []
    for node in reversed(ops):
        if any(o is not None and o in needed for o in node.outputs):
            live.append(node)
            # Every value the node reads, including those its subgraphs capture.
            needed.update(v for v in graph.nx.predecessors(node))
    return list(reversed(live))


def last_uses(graph: Graph, ops: list) -> dict:
    """Value -> the last op of ``ops`` reading it (subgraph captures count), graph outputs excluded."""
    outputs = set(graph.outputs)
    last: dict = {}
    for node in ops:
        for v in graph.nx.predecessors(node):
            if v not in outputs:
                last[v] = node
    return last


def handler_key(node) -> str:
    """`Conv` for standard ops, `irc.ConvRelu` for ops of another domain."""
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


def find_handler(key: str):
    """The handler registered for ``key``, or for a pattern like `irc.Elementwise_*` it matches."""
    if key in HANDLERS:
        return HANDLERS[key]
    return next((fn for pattern, fn in HANDLERS.items()
                 if pattern.endswith("*") and key.startswith(pattern[:-1])), None)


def _used_values(graph: Graph) -> set:
    """Values something reads: an op (including subgraph captures) or the graph outputs."""
    used = set(graph.outputs)
    used.update(v for v in graph.values.values() if graph.nx.out_degree(v) > 0)
    return used


def _dtype_summary(builder: FunctionBuilder, node) -> str:
    out = []
    for v in node.inputs:
        if v is None:
            continue
        try:
            out.append(builder.rtype(v))
        except Unsupported:
            out.append(helper.tensor_dtype_to_string(v.dtype).replace("TensorProto.", "").lower()
                       if v.dtype else "?")
    return ",".join(out) or "-"


def _shape_doc(v: Value) -> str:
    if v.shape is None:
        return "any shape"
    dims = [str(d) if isinstance(d, int) else doc(str(d) if d else "?") for d in v.shape]
    return "[" + ", ".join(dims) + "]"


def _check_dims(v: Value) -> str | None:
    if v.shape is None:
        return None
    dims = ", ".join(f"Some({d})" if isinstance(d, int) and d >= 0 else "None" for d in v.shape)
    return f"&[{dims}]"


def _array_type(rtype: str) -> str:
    return f"ArrayD<{rtype}>"


class Emitter:
    """Emits one model (a graph after preparation) as a Rust module body."""

    def __init__(self, graph: Graph, struct: str):
        self.graph = graph
        self.struct = struct
        self.b = FunctionBuilder(graph)
        self.opset = _opset(graph)
        self.problems: list[UnsupportedNode] = []
        self.stmts: list[str] = []
        # (op, statements emitted up to and including it) for the model's ops, in order.
        self.marks: list[tuple[object, int]] = []

    def run(self) -> ModelSource:
        self.b.emitter = self
        self._bind_inputs()
        self.stmts = self.emit_block(self.b)
        if self.problems:
            raise EmitError(self.problems)
        return self._assemble()

    def emit_block(self, builder: FunctionBuilder) -> list[str]:
        """Statements computing the live ops of ``builder.graph`` (the model, or a subgraph)."""
        stmts: list[str] = []
        ops = live_ops(builder.graph)
        builder.last_use = last_uses(builder.graph, ops)
        marks = []
        for node in ops:
            self._emit_node(node, builder, stmts)
            marks.append((node, len(stmts)))
        if builder is self.b:
            self.marks = marks
        return stmts

    # -- nodes --------------------------------------------------------------
    def _bind_inputs(self) -> None:
        for v in self.graph.inputs:
            if v.name in self.graph.initializers:
                continue
            self.b.params[v] = self.b.locals.fresh(v.name, "input")
            try:
                self.b.rtype(v)
            except Unsupported as exc:
                self.problems.append(UnsupportedNode(f"input {v.name}", "<input>", "", self.opset, "?", str(exc)))

    def _problem(self, node, builder: FunctionBuilder, reason: str) -> None:
        self.problems.append(UnsupportedNode(
            node.name or (node.outputs[0].name if node.outputs and node.outputs[0] else "?"),
            node.op_type, node.domain, self.opset, _dtype_summary(builder, node), reason))

    def _emit_node(self, node, builder: FunctionBuilder, stmts: list[str]) -> None:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            if builder.const(node.outputs[0]) is None:
                self._problem(node, builder, "unsupported Constant attribute")
            return
        handler = find_handler(handler_key(node))
        if handler is None:
            domain = f"op domain {node.domain!r}: " if node.domain not in ("", "ai.onnx") else ""
            self._problem(node, builder, f"{domain}op not supported by the Rust backend")
            return
        ctx = OpCtx(builder, node, self.opset)
        try:
            used = _used_values(builder.graph)
            for v in ctx.outs:
                if v is not None and v in used:
                    builder.rtype(v)
            expr = handler(ctx)
        except Unsupported as exc:
            self._problem(node, builder, str(exc))
            return
        if expr is not None:  # None: deferred into its reader (`builder.deferred`)
            self._bind_outputs(node, ctx, expr, builder, stmts)
        self._free_dead_inputs(node, ctx, builder, stmts)

    @staticmethod
    def _free_dead_inputs(node, ctx: OpCtx, builder: FunctionBuilder, stmts: list[str]) -> None:
        """`drop` the locals this node read last (those it took by value are gone already)."""
        dead = [v for v in dict.fromkeys(builder.graph.nx.predecessors(node))
                if builder.last_use.get(v) is node and v in builder.names and v not in ctx.moved]
        for v in dead:
            stmts.append(f"drop({builder.names[v]});")

    def _bind_outputs(self, node, ctx: OpCtx, expr: str, builder: FunctionBuilder, stmts: list[str]) -> None:
        base = node.name or (node.outputs[0].name if node.outputs[0] is not None else node.op_type)
        used = _used_values(builder.graph)
        outs = ctx.outs
        try_ = "" if ctx.no_try else "?"
        if ctx.multi is None:
            name = builder.locals.fresh(base, "t")
            builder.names[outs[0]] = name
            stmts.append(f"let {name} = {expr}{try_};")
            return
        names = []
        for i, v in enumerate(outs):
            if v is None or v not in used:
                names.append("_")
                continue
            name = builder.locals.fresh(f"{base}_{i}" if i else base, "t")
            builder.names[v] = name
            names.append(name)
        names += ["_"] * max(0, (ctx.n_results or 0) - len(names))
        if ctx.multi == "tuple":
            stmts.append(f"let ({', '.join(names)}) = {expr}{try_};")
        else:
            arr = _array_type(ctx.ot(0))
            stmts.append(
                f"let [{', '.join(names)}]: [{arr}; {len(names)}] = {expr}?\n"
                f"            .try_into()\n"
                f"            .map_err(|_| Error::Shape(\"unexpected number of parts\".into()))?;")

    # -- assembly -----------------------------------------------------------
    def _inputs(self) -> list[Value]:
        return [v for v in self.graph.inputs if v in self.b.params]

    def _result_expr(self, v: Value) -> str:
        if v in self.b.names and list(self.graph.outputs).count(v) == 1 and v not in self.b.params:
            return self.b.names[v]
        return self.b.ref(v).removeprefix("&") + ".clone()"

    def _assemble(self) -> ModelSource:
        graph, b = self.graph, self.b
        outs = graph.outputs
        try:
            out_types = [b.rtype(v) for v in outs]
            results = [self._result_expr(v) for v in outs]
        except Unsupported as exc:
            raise EmitError([UnsupportedNode("outputs", "<output>", "", self.opset, "?", str(exc))]) from None
        files_namer = Namer({"outputs"})
        files = [files_namer.fresh(v.name, "output") for v in outs]
        lines: list[str] = []
        w = lines.append
        w(f"/// The model `{doc(graph.name)}` with its weights.")
        w(f"pub struct {self.struct} {{")
        for wt in b.weights:
            if not wt.raw:
                continue
            w(f"    /// `{doc(wt.source)}`: {wt.array.dtype}, shape {list(wt.array.shape)}")
            w(f"    pub {wt.field}: {_array_type(b.rtype_of_array(wt.array))},")
        for prep in b.prepared_fields.values():
            w(f"    /// `{doc(prep.weight.source)}` ({prep.weight.array.dtype}, shape "
              f"{list(prep.weight.array.shape)}) prepared at load.")
            w(f"    pub {prep.field}: {prep.rust_type},")
        w("}")
        w("")
        w(f"impl {self.struct} {{")
        w("    /// ONNX names of the inputs of [`Self::forward`], in order.")
        w("    pub const INPUT_NAMES: &'static [&'static str] = &["
          + ", ".join(rust_str(v.name) for v in self._inputs()) + "];")
        w("    /// ONNX names of the outputs, in order.")
        w("    pub const OUTPUT_NAMES: &'static [&'static str] = &["
          + ", ".join(rust_str(v.name) for v in outs) + "];")
        w("    /// File stems (sanitized names) the CLI writes the outputs to.")
        w("    pub const OUTPUT_FILES: &'static [&'static str] = &["
          + ", ".join(rust_str(f) for f in files) + "];")
        w("")
        w("    /// Loads the weights from a `weights.bin` file written by irc (one tensor at a time:")
        w("    /// the file is never held in memory beside the model).")
        w("    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self, Error> {")
        w("        Self::from_weights(&rt::Weights::open(path.as_ref())?)")
        w("    }")
        w("")
        w("    /// Builds the model from the bytes of a `weights.bin` file.")
        w("    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {")
        w("        Self::from_weights(&rt::Weights::parse(bytes)?)")
        w("    }")
        w("")
        w("    fn from_weights(w: &rt::Weights) -> Result<Self, Error> {")
        if b.weights:
            w("        Ok(Self {")
            for i, wt in enumerate(b.weights):
                dims = ", ".join(str(d) for d in wt.array.shape)
                if wt.raw:
                    w(f"            {wt.field}: w.get({i}, &[{dims}])?,")
            index = {id(wt): i for i, wt in enumerate(b.weights)}
            for prep in b.prepared_fields.values():
                dims = ", ".join(str(d) for d in prep.weight.array.shape)
                w(f"            {prep.field}: {prep.init.format(f'w.get({index[id(prep.weight)]}, &[{dims}])?')},")
            w("        })")
        else:
            w("        let _ = w;")
            w("        Ok(Self {})")
        w("    }")
        w("")
        w(f"    /// Runs `{doc(graph.name)}`.")
        w("    ///")
        w("    /// Inputs:")
        for v in self._inputs():
            w(f"    /// - `{b.params[v]}` (ONNX `{doc(v.name)}`): {b.rtype(v)}, shape {_shape_doc(v)}")
        w("    ///")
        w("    /// Outputs" + (" (in this order):" if len(outs) > 1 else ":"))
        for v, t in zip(outs, out_types, strict=True):
            w(f"    /// - ONNX `{doc(v.name)}`: {t}, shape {_shape_doc(v)}")
        params = ", ".join(f"{b.params[v]}: &{_array_type(b.rtype(v))}" for v in self._inputs())
        ret = (_array_type(out_types[0]) if len(outs) == 1
               else "(" + ", ".join(_array_type(t) for t in out_types) + ")")
        split = batch_split(graph, live_ops(graph))
        if split is not None:
            self._batch_parallel_forward(split, params, ret, w)
        w(f"    {'fn forward_serial' if split else 'pub fn forward'}(&self{', ' if params else ''}{params}) "
          f"-> Result<{ret}, Error> {{")
        for v in self._inputs():
            dims = _check_dims(v)
            if dims is not None:
                w(f"        rt::check_shape({b.params[v]}, {rust_str(v.name)}, {dims})?;")
        for s in self.stmts:
            w(indent(s, 8))
        w(f"        Ok({results[0] if len(results) == 1 else '(' + ', '.join(results) + ')'})")
        w("    }")
        w("")
        w("    /// Runs the model on dynamically typed tensors, inputs and outputs in ONNX order.")
        w("    pub fn run_any(&self, inputs: Vec<AnyArray>) -> Result<Vec<AnyArray>, Error> {")
        if self._inputs():
            w("        let mut inputs = inputs.into_iter();")
        else:
            w("        drop(inputs);")
        args = []
        for v in self._inputs():
            name = b.params[v]
            w(f"        let {name}: {_array_type(b.rtype(v))} = rt::next_input(&mut inputs, {rust_str(v.name)})?;")
            args.append(f"&{name}")
        outs_names = [f"out_{i}" for i in range(len(outs))]
        pattern = outs_names[0] if len(outs) == 1 else "(" + ", ".join(outs_names) + ")"
        w(f"        let {pattern} = self.forward({', '.join(args)})?;")
        w("        Ok(vec![" + ", ".join(f"{t}::into_any({n})" for t, n in zip(out_types, outs_names, strict=True)) + "])")
        w("    }")
        w("}")
        return ModelSource(self.struct, "\n".join(lines) + "\n", b.weights,
                           [v.name for v in self._inputs()], [v.name for v in outs], files)

    def _batch_parallel_forward(self, split: BatchSplit, params: str, ret: str, w: Callable[[str], None]) -> None:
        """`forward` running `forward_serial` on one chunk of the batch per thread (see batch.py)."""
        b = self.b
        ins = self._inputs()
        axes = {b.params[v]: split.inputs[v.name] for v in ins if v.name in split.inputs}
        # Local names that no input's name takes.
        chunks, parts, items, part, work = (b.locals.fresh(n, "t")
                                            for n in ("chunks", "parts", "items", "part", "item_flops"))
        w(f"    pub fn forward(&self{', ' if params else ''}{params}) -> Result<{ret}, Error> {{")
        w("        // Every op treats the batch items independently: with several threads, each")
        w("        // thread runs the whole model on its own contiguous run of items.")
        batch = ", ".join(f"({n}.shape(), {a})" for n, a in axes.items())
        w(f"        let {work} = {split.item_flops:_}; // rough cost of one item")
        # Items whose intermediates outgrow L2 run one at a time (see ITEM_RUN_BYTES).
        serial = "forward_items" if split.item_bytes >= ITEM_RUN_BYTES else "forward_serial"
        w(f"        let Some({chunks}) = rt::batch::batch_chunks(rt::batch::common_batch(&[{batch}]), {work}) else {{")
        w(f"            return self.{serial}({', '.join(b.params[v] for v in ins)});")
        w("        };")
        args = ", ".join(f"&rt::batch::batch_slice({b.params[v]}, {axes[b.params[v]]}, {items})" if b.params[v] in axes
                         else b.params[v] for v in ins)
        w(f"        let {parts} = rt::batch::batch_parallel({chunks}, |{items}| self.{serial}({args}))?;")
        _concat_parts(split, parts, part, w)
        w("    }")
        w("")
        if serial == "forward_items":
            self._items_forward(split, axes, params, ret, w)
        w("    /// [`Self::forward`] on one thread: the whole batch, or one chunk of it.")

    def _tail_cut(self, split: BatchSplit) -> tuple[int, Value] | None:
        """Where `forward_items` hands over to one batched tail: after the op (index into
        ``self.marks``) past which one batch-carrying value is all that is live, between the
        last convolution and the first dense layer with constant weights of a classifier
        head; None when there is no such point.

        Each item's run of a dense layer streams its whole weight matrix from memory (the
        rest of the model has evicted it): mobilenet's 4 MB 1024 -> 1000 classifier took
        ~250 µs per item; batched, the items share one stream."""
        g = self.graph
        ops = [op for op, _ in self.marks]
        keys = [op.op_type if op.domain in ("", "ai.onnx") else f"{op.domain}.{op.op_type}" for op in ops]

        def dense(i: int) -> bool:
            k = keys[i]
            return ((k in ("Gemm", "MatMul") or k.startswith(("irc.Gemm", "irc.MatMul", "irc.Dense")))
                    and len(ops[i].inputs) > 1 and ops[i].inputs[1] is not None
                    and g.constant_value(ops[i].inputs[1]) is not None)

        convs = [i for i, k in enumerate(keys) if k in ("Conv", "ConvTranspose") or k.startswith("irc.Conv")]
        if not convs:
            return None
        denses = [i for i in range(convs[-1] + 1, len(ops)) if dense(i)]
        if not denses or any(op.subgraphs for op in ops[convs[-1] + 1:]):
            return None
        inputs = set(g.inputs)
        produced: set = set()
        for op in ops[:convs[-1]]:
            produced.update(v for v in op.outputs if v is not None)
        best = None
        for i in range(convs[-1], denses[0]):
            produced.update(v for v in ops[i].outputs if v is not None)
            later = ops[i + 1:]
            reads = {v for op in later for v in g.nx.predecessors(op)}
            live = {v for v in reads if v in produced} | {v for v in g.outputs if v in produced}
            if reads & inputs or len(live) != 1:
                continue
            (v,) = live
            if isinstance(split.axes.get(v.name), int) and v in self.b.names:
                best = (i, v)
        return best

    def _items_forward(self, split: BatchSplit, axes: dict, params: str, ret: str, w: Callable[[str], None]) -> None:
        """`forward_items`: `forward_serial` once per batch item, outputs concatenated."""
        b = self.b
        ins = self._inputs()
        n, parts, item, part = (b.locals.fresh(x, "t") for x in ("batch", "parts", "item", "part"))
        batch = ", ".join(f"({name}.shape(), {a})" for name, a in axes.items())
        w("    /// [`Self::forward_serial`] one batch item at a time: one item's intermediates")
        w(f"    /// ({split.item_bytes:_} bytes at most) stay in L3 from one layer to the next.")
        w(f"    fn forward_items(&self{', ' if params else ''}{params}) -> Result<{ret}, Error> {{")
        w(f"        let Some({n}) = rt::batch::common_batch(&[{batch}]).filter(|&n| n > 1) else {{")
        w(f"            return self.forward_serial({', '.join(b.params[v] for v in ins)});")
        w("        };")
        args = ", ".join(f"&rt::batch::batch_slice({b.params[v]}, {axes[b.params[v]]}, &({item}..{item} + 1))"
                         if b.params[v] in axes else b.params[v] for v in ins)
        cut = self._tail_cut(split)
        if cut is None:
            w(f"        let {parts} = (0..{n}).map(|{item}| self.forward_serial({args})).collect::<Result<Vec<_>, Error>>()?;")
            _concat_parts(split, parts, part, w)
            w("    }")
            w("")
            return
        i, v = cut
        name, vtype = b.names[v], _array_type(b.rtype(v))
        w("        // Items up to the classifier head one at a time, the head on the whole batch.")
        w(f"        let {parts} = (0..{n}).map(|{item}| self.forward_head({args})).collect::<Result<Vec<_>, Error>>()?;")
        w(f"        self.forward_tail(rt::batch::concat_batch(&{parts}, {split.axes[v.name]}, |{part}| {part})?)")
        w("    }")
        w("")
        end = self.marks[i][1]
        w("    /// [`Self::forward_serial`] up to the classifier head (one item of `forward_items`).")
        w(f"    fn forward_head(&self{', ' if params else ''}{params}) -> Result<{vtype}, Error> {{")
        for x in ins:
            dims = _check_dims(x)
            if dims is not None:
                w(f"        rt::check_shape({b.params[x]}, {rust_str(x.name)}, {dims})?;")
        for s in self.stmts[:end]:
            w(indent(s, 8))
        w(f"        Ok({name})")
        w("    }")
        w("")
        outs = self.graph.outputs
        results = [self._result_expr(o) for o in outs]
        w("    /// The classifier head of [`Self::forward_serial`] on a whole batch (`forward_items`).")
        w(f"    fn forward_tail(&self, {name}: {vtype}) -> Result<{ret}, Error> {{")
        for s in self.stmts[end:]:
            w(indent(s, 8))
        w(f"        Ok({results[0] if len(results) == 1 else '(' + ', '.join(results) + ')'})")
        w("    }")
        w("")


def _concat_parts(split: BatchSplit, parts: str, part: str, w: Callable[[str], None]) -> None:
    """The tail of a batch-split forward: every output joined from the parts' along its batch axis."""
    outs = split.outputs
    if len(outs) == 1:
        w(f"        rt::batch::concat_batch(&{parts}, {outs[0]}, |{part}| {part})")
        return
    w("        Ok((")
    for i, a in enumerate(outs):
        w(f"            rt::batch::concat_batch(&{parts}, {a}, |{part}| &{part}.{i})?,")
    w("        ))")


# A batch-split model whose largest intermediate of one item is at least this many bytes
# runs its items one at a time on each thread (`forward_items`): mobilenet at batch 8, one
# thread, ran ~12% slower per image than at batch 1 (its 112x112x64 maps, 3.2 MB per image,
# 25.7 MB per batch, go through memory between layers).
ITEM_RUN_BYTES = 2 << 20


MODULE_PRELUDE = """use crate::runtime as rt;
use crate::runtime::{AnyArray, Elem, Error};
use ndarray::ArrayD;
"""


def emit_model(graph: Graph, struct: str) -> ModelSource:
    """Emit a prepared graph; raises :class:`EmitError` listing every unsupported node."""
    return Emitter(graph, struct).run()


def write_weights(weights: list[Weight]) -> bytes:
    """The `weights.bin` bytes: header, offset table, 64-byte aligned little-endian data."""
    header = bytearray(b"IRCW0001")
    header += len(weights).to_bytes(8, "little")
    table_size = sum(4 + 4 + 8 + 8 + 8 * w.array.ndim for w in weights)
    offset = len(header) + table_size
    blobs = []
    for wt in weights:
        offset = (offset + 63) // 64 * 64
        data = wt.array.astype(wt.array.dtype.newbyteorder("<"), copy=False).tobytes(order="C")
        code = elem_type_of(wt.array)
        header += code.to_bytes(4, "little") + wt.array.ndim.to_bytes(4, "little")
        header += offset.to_bytes(8, "little") + len(data).to_bytes(8, "little")
        for d in wt.array.shape:
            header += int(d).to_bytes(8, "little")
        blobs.append((offset, data))
        offset += len(data)
    out = bytearray(header)
    for off, data in blobs:
        out += b"\0" * (off - len(out))
        out += data
    return bytes(out)


__all__ = ["EmitError", "ModelSource", "UnsupportedNode", "emit_model", "write_weights", "MODULE_PRELUDE"]
