"""Is a model batch-separable? The emit-time analysis behind the batch-parallel `forward`.

A graph is batch-separable when every op treats the items of the batch independently:
running the model on contiguous chunks of the batch and concatenating the outputs gives
what one run on the whole batch gives. Then, with several threads, `forward` runs the
serial model on one chunk per thread (`rt::batch::batch_parallel`) instead of splitting
every op.

The batch is a symbolic (dynamic) dimension of the graph inputs; shape inference carries
it into the intermediates. Each value gets a state:

- an int: the axis that carries the batch (checked against the inferred shape: the
  symbol sits exactly there and nowhere else);
- ``FREE``: does not depend on the batch (constants, inputs without the symbol, anything
  computed from those only): every chunk reads it whole;
- ``SHAPE``: computed from the shape of a batch-carrying value (`Shape -> Gather ->
  Concat`): allowed only as the shape operand of Reshape / Expand / ConstantOfShape, whose
  outputs are then checked against the inferred shapes.

Every op that reads a batch-carrying value must match a rule below that proves the
batch maps through it; anything else (an unknown op, a reduction or a Softmax over the
batch axis, a Reshape folding the batch into another axis, a MatMul contracting over it,
training-mode BatchNorm, ...) makes the graph not separable and `forward` stays serial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

import numpy as np

from ...ir import Graph, Value

FREE = "free"
SHAPE = "shape"


@dataclass
class BatchSplit:
    """How to split a separable graph: the batch symbol and the batch axis of each input and output."""

    symbol: str
    inputs: dict[str, int]  # graph input name -> batch axis (inputs not listed are passed whole)
    outputs: list[int]  # batch axis of each graph output, in order
    item_flops: int = 0  # rough work of one batch item (multiply-adds count two)
    item_bytes: int = 0  # the largest intermediate of one batch item, in bytes (4 per element)
    axes: dict[str, int] = field(default_factory=dict)  # value name -> its batch axis (batch-carrying values)


class NotSeparable(Exception):
    pass


UNARY = {
    "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal", "Erf", "Floor", "Ceil",
    "Round", "Sign", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh",
    "Not", "Cast", "CastLike", "Identity", "LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish",
    "Softplus", "Softsign", "ThresholdedRelu", "Mish", "Gelu", "IsNaN", "IsInf", "Clip", "Dropout",
    "irc.Gelu", "irc.GeluTanh", "QuantizeLinear", "DequantizeLinear",
}
BROADCAST = {
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "Equal", "Less", "LessOrEqual",
    "Greater", "GreaterOrEqual", "And", "Or", "Xor", "BitShift", "Mod", "PRelu",
}
# Ops whose data input (slot 0) and output carry the batch on axis 0, every other operand free.
BATCH0 = {
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool",
    "GlobalLpPool", "InstanceNormalization", "LRN", "BatchNormalization", "DepthToSpace", "SpaceToDepth",
    "GroupNormalization",
}
REDUCE = {
    "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
}
# Ops computing shape values from shape values (all operands SHAPE or FREE).
SHAPE_OPS = {"Gather", "Concat", "Slice", "Unsqueeze", "Squeeze", "Cast", "Reshape", "Identity", "Add", "Sub",
             "Mul", "Div", "Max", "Min", "Equal", "Where", "Abs", "Neg"}
RANDOM = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
BIG = 1 << 31  # Slice ends at or past this cover the whole axis


def key(op) -> str:
    return op.op_type if op.domain in ("", "ai.onnx") else f"{op.domain}.{op.op_type}"


class _Analysis:
    def __init__(self, graph: Graph, symbol: str, opset: int):
        self.g = graph
        self.symbol = symbol
        self.opset = opset
        self.state: dict[Value, object] = {}

    # -- helpers -------------------------------------------------------------
    def st(self, v: Value | None):
        if v is None:
            return None
        if v in self.state:
            return self.state[v]
        if self.g.constant_value(v) is not None:
            return FREE
        raise NotSeparable(f"{v.name}: not computed before use")

    def const(self, v: Value | None):
        if v is None:
            return None
        c = self.g.constant_value(v)
        return None if c is None else np.asarray(c)

    def shape(self, v: Value) -> tuple | None:
        c = self.const(v)
        if c is not None:
            return tuple(c.shape)
        return None if v.shape is None else tuple(v.shape)

    def rank(self, v: Value) -> int:
        s = self.shape(v)
        if s is None:
            raise NotSeparable(f"{v.name}: unknown rank")
        return len(s)

    def ints(self, v: Value | None) -> list[int] | None:
        c = self.const(v)
        return None if c is None else [int(x) for x in np.asarray(c).reshape(-1)]

    def axis_at(self, v: Value) -> int:
        s = self.st(v)
        if not isinstance(s, int):
            raise NotSeparable(f"{v.name}: no batch axis")
        return s

    def free(self, *vs: Value | None) -> None:
        for v in vs:
            if v is not None and self.st(v) != FREE:
                raise NotSeparable(f"{v.name}: must not depend on the batch")

    def symbol_axis(self, v: Value) -> int:
        """The one axis of ``v``'s inferred shape holding the batch symbol."""
        if v.shape is None:
            raise NotSeparable(f"{v.name}: unknown shape")
        hits = [i for i, d in enumerate(v.shape) if d == self.symbol]
        if len(hits) != 1:
            raise NotSeparable(f"{v.name}: batch symbol at {hits}")
        return hits[0]

    # -- the walk ---------------------------------------------------------------
    def run(self, ops) -> None:
        for op in ops:
            reads = list(dict.fromkeys(self.g.nx.predecessors(op)))
            states = [self.st(v) for v in reads]
            k = key(op)
            if k in RANDOM:
                raise NotSeparable(f"{op.op_type}: random")
            if all(s == FREE for s in states):
                outs = [FREE] * len(op.outputs)
            elif op.subgraphs:
                raise NotSeparable(f"{op.op_type}: subgraph over batch values")
            elif SHAPE in states:
                outs = self.shape_rule(op, k)
            else:
                rule = self.rule(k)
                if rule is None:
                    raise NotSeparable(f"{k}: no batch rule")
                outs = rule(op)
            if not isinstance(outs, list):
                outs = [outs] * len(op.outputs)
            for v, s in zip(op.outputs, outs, strict=False):
                if v is None:
                    continue
                if isinstance(s, int) and (self.g.uses(v) or v in self.g.outputs) and self.symbol_axis(v) != s:
                    raise NotSeparable(f"{v.name}: batch axis {s} disagrees with its shape {v.shape}")
                self.state[v] = s

    def rule(self, k: str):
        if k in UNARY:
            return self.unary
        if k in BROADCAST or k.startswith("irc.Elementwise_"):
            return self.broadcast
        if k in BATCH0 or (k.startswith("irc.Conv") and not k.startswith("irc.ConvAdd")):
            return self.batch0
        if k.startswith("irc.ConvAdd"):
            return self.conv_add
        if k == "irc.EmbedConv":
            return self.embed_conv
        if k == "Gemm" or k.startswith("irc.Gemm"):
            return self.gemm
        if k == "MatMul" or k.startswith("irc.MatMul"):
            return self.matmul
        if k in REDUCE or k in ("ArgMax", "ArgMin"):
            return self.reduce
        return {
            "Softmax": self.softmax, "LogSoftmax": self.softmax, "Hardmax": self.softmax,
            "LayerNormalization": self.layer_norm, "irc.LayerNormalization": self.layer_norm,
            "irc.AttentionChain": self.attention, "Reshape": self.reshape, "Flatten": self.flatten,
            "Transpose": self.transpose, "Squeeze": self.squeeze, "Unsqueeze": self.unsqueeze,
            "Concat": self.concat, "Slice": self.slice, "Gather": self.gather, "Split": self.split,
            "Expand": self.expand, "Tile": self.tile, "Pad": self.pad, "Shape": self.shape_of,
            "LSTM": self.rnn, "GRU": self.rnn, "RNN": self.rnn, "TopK": self.topk, "CumSum": self.cumsum,
        }.get(k)

    # -- rules -------------------------------------------------------------------
    def unary(self, op):
        a = self.axis_at(op.input(0))
        self.free(*op.inputs[1:])
        if op.op_type == "Dropout" and len(op.inputs) > 2:
            t = self.ints(op.input(2))
            if t is None or any(t):
                raise NotSeparable("Dropout in training mode")
        return a

    def broadcast(self, op):
        ins = [v for v in op.inputs if v is not None]
        r = max(self.rank(v) for v in ins)
        out = None
        for v in ins:
            s = self.st(v)
            if isinstance(s, int):
                mapped = s + r - self.rank(v)
                if out is not None and mapped != out:
                    raise NotSeparable(f"{op.op_type}: operands carry the batch on different axes")
                out = mapped
        for v in ins:
            if self.st(v) == FREE:
                shape = self.shape(v)
                i = out - (r - len(shape)) if shape is not None else None
                if shape is None or (i >= 0 and shape[i] != 1):
                    raise NotSeparable(f"{op.op_type}: {v.name} may broadcast along the batch")
        return out

    def batch0(self, op):
        if self.axis_at(op.input(0)) != 0:
            raise NotSeparable(f"{op.op_type}: batch not on axis 0")
        self.free(*op.inputs[1:])
        if op.op_type == "BatchNormalization" and op.attr("training_mode", 0):
            raise NotSeparable("BatchNormalization in training mode")
        if op.op_type in ("MaxPool", "BatchNormalization", "Dropout"):
            # MaxPool's indices count across the batch, training BatchNorm's statistics span it.
            if any(v is not None and (self.g.uses(v) or v in self.g.outputs) for v in op.outputs[1:]):
                raise NotSeparable(f"{op.op_type}: secondary outputs")
        return 0

    def conv_add(self, op):
        if self.axis_at(op.input(0)) != 0 or self.axis_at(op.input(3)) != 0:
            raise NotSeparable("ConvAdd: batch not on axis 0")
        self.free(*op.inputs[1:3], *op.inputs[4:])
        return 0

    def embed_conv(self, op):
        # (table, ids, bias): ids (batch, positions) -> (batch, ...) per item.
        if self.axis_at(op.input(1)) != 0:
            raise NotSeparable("EmbedConv: ids without the batch on axis 0")
        self.free(op.input(0), *op.inputs[2:])
        return 0

    def gemm(self, op):
        a = self.axis_at(op.input(0))
        if a != (1 if op.attr("transA", 0) else 0):
            raise NotSeparable("Gemm: batch not on A's rows")
        self.free(*op.inputs[1:])
        c = op.inputs[2] if len(op.inputs) > 2 else None
        if c is not None:
            shape = self.shape(c)
            if shape is None or (len(shape) == 2 and shape[0] != 1):
                raise NotSeparable("Gemm: C may broadcast along the batch")
        return 0

    def matmul(self, op):
        av, bv = op.input(0), op.input(1)
        sa, sb = self.st(av), self.st(bv)
        ra, rb = self.rank(av), self.rank(bv)
        if ra < 2 or rb < 2:
            if ra >= 2 and isinstance(sa, int) and sb == FREE and sa < ra - 1:
                return sa  # (..., m, k) x (k,) -> (..., m)
            raise NotSeparable("MatMul: rank-1 operand")
        r = max(ra, rb)
        out = None
        for _v, s, rv, contracted in ((av, sa, ra, ra - 1), (bv, sb, rb, rb - 2)):
            if not isinstance(s, int):
                continue
            if s == contracted:
                raise NotSeparable("MatMul: contracts over the batch axis")
            if isinstance(sa, int) and isinstance(sb, int) and s >= rv - 2:
                raise NotSeparable("MatMul: both operands carry the batch in their matrices")
            mapped = s + r - rv
            if out is not None and mapped != out:
                raise NotSeparable("MatMul: operands carry the batch on different axes")
            out = mapped
        for v, s, rv in ((av, sa, ra), (bv, sb, rb)):
            if s == FREE and out < r - 2:
                shape = self.shape(v)
                i = out - (r - rv)
                if shape is None or (i >= 0 and shape[i] != 1):
                    raise NotSeparable(f"MatMul: {v.name} may broadcast along the batch")
        return out

    def softmax(self, op):
        a = self.axis_at(op.input(0))
        r = self.rank(op.input(0))
        axis = int(op.attr("axis", -1 if self.opset >= 13 else 1)) % r
        if (a == axis) if self.opset >= 13 else (a >= axis):
            raise NotSeparable(f"{op.op_type} over the batch axis")
        return a

    def layer_norm(self, op):
        a = self.axis_at(op.input(0))
        r = self.rank(op.input(0))
        axis = int(op.attr("axis", -1)) % r
        if a >= axis:
            raise NotSeparable("LayerNormalization over the batch axis")
        self.free(*op.inputs[1:])
        return a

    def attention(self, op):
        axes = {self.axis_at(v) for v in op.inputs}
        r = self.rank(op.input(0))
        if len(axes) != 1 or len(op.inputs) != 3 or next(iter(axes)) >= r - 2:
            raise NotSeparable("AttentionChain: batch not on one leading axis")
        return axes.pop()

    def _axes(self, op, slot: int) -> list[int] | None:
        """An op's `axes` (attribute, or input ``slot`` from the opset that moved it there)."""
        if op.attr("axes") is not None:
            return [int(x) for x in op.attr("axes")]
        if len(op.inputs) > slot and op.inputs[slot] is not None:
            self.free(op.inputs[slot])
            got = self.ints(op.inputs[slot])
            if got is None:
                raise NotSeparable(f"{op.op_type}: axes not constant")
            return got
        return None

    def reduce(self, op):
        x = op.input(0)
        a, r = self.axis_at(x), self.rank(x)
        if op.op_type in ("ArgMax", "ArgMin"):
            axes = [int(op.attr("axis", 0))]
        else:
            axes = self._axes(op, 1)
            if not axes:
                if op.attr("noop_with_empty_axes", 0) and axes is not None:
                    return a
                raise NotSeparable(f"{op.op_type} over every axis")
        axes = sorted({ax % r for ax in axes})
        if a in axes:
            raise NotSeparable(f"{op.op_type} over the batch axis")
        return a if op.attr("keepdims", 1) else a - sum(ax < a for ax in axes)

    def reshape(self, op):
        x = op.input(0)
        a = self.axis_at(x)
        y = op.output(0)
        b = self.symbol_axis(y)
        shape = self.ints(op.input(1))
        if shape is not None and shape[b] != -1 and not (shape[b] == 0 and a == b and not op.attr("allowzero", 0)):
            raise NotSeparable("Reshape: target shape does not leave the batch free")
        return self._fold_check(x, a, y, b)

    def _fold_check(self, x: Value, a: int, y: Value, b: int) -> int:
        """The batch axis ``a`` of ``x`` lands alone on axis ``b`` of ``y`` (static dims around it)."""
        xs, ys = self.shape(x), self.shape(y)
        others = [d for i, d in enumerate(xs) if i != a] + [d for i, d in enumerate(ys) if i != b]
        if not all(isinstance(d, int) for d in others):
            raise NotSeparable(f"{y.name}: dynamic dims beside the batch")
        if prod(xs[:a]) != prod(ys[:b]) or prod(xs[a + 1:]) != prod(ys[b + 1:]):
            raise NotSeparable(f"{y.name}: the batch is folded with other axes")
        return b

    def flatten(self, op):
        x = op.input(0)
        a, r = self.axis_at(x), self.rank(x)
        axis = int(op.attr("axis", 1)) % (r + 1) if r else 0
        return self._fold_check(x, a, op.output(0), 0 if a < axis else 1)

    def transpose(self, op):
        x = op.input(0)
        a, r = self.axis_at(x), self.rank(x)
        perm = [int(p) for p in (op.attr("perm") or range(r - 1, -1, -1))]
        return perm.index(a)

    def squeeze(self, op):
        x = op.input(0)
        a, r = self.axis_at(x), self.rank(x)
        axes = self._axes(op, 1)
        if not axes:  # squeezing every 1-long axis would squeeze a one-item chunk's batch
            raise NotSeparable("Squeeze without axes")
        axes = {ax % r for ax in axes}
        if a in axes:
            raise NotSeparable("Squeeze of the batch axis")
        return a - sum(ax < a for ax in axes)

    def unsqueeze(self, op):
        x = op.input(0)
        a, r = self.axis_at(x), self.rank(x)
        axes = self._axes(op, 1)
        if axes is None:
            raise NotSeparable("Unsqueeze without axes")
        out_r = r + len(axes)
        inserted = {ax % out_r for ax in axes}
        kept = [i for i in range(out_r) if i not in inserted]
        return kept[a]

    def concat(self, op):
        ins = [v for v in op.inputs if v is not None]
        axes = {self.st(v) for v in ins}
        if len(axes) != 1 or not isinstance(next(iter(axes)), int):
            raise NotSeparable("Concat: an operand without the batch axis")
        a = axes.pop()
        if int(op.attr("axis", 0)) % self.rank(ins[0]) == a:
            raise NotSeparable("Concat along the batch axis")
        return a

    def slice(self, op):
        x = op.input(0)
        a, r = self.axis_at(x), self.rank(x)
        if len(op.inputs) > 1:
            self.free(*op.inputs[1:])
            starts, ends = self.ints(op.input(1)), self.ints(op.input(2))
            axes = self.ints(op.inputs[3]) if len(op.inputs) > 3 and op.inputs[3] is not None else None
            steps = self.ints(op.inputs[4]) if len(op.inputs) > 4 and op.inputs[4] is not None else None
            if starts is None or ends is None or (len(op.inputs) > 3 and op.inputs[3] is not None and axes is None) \
                    or (len(op.inputs) > 4 and op.inputs[4] is not None and steps is None):
                raise NotSeparable("Slice: bounds not constant")
        else:
            starts, ends, axes = op.attr("starts"), op.attr("ends"), op.attr("axes")
            steps = None
        axes = list(range(len(starts))) if axes is None else axes
        steps = [1] * len(starts) if steps is None else steps
        for ax, s, e, st in zip(axes, starts, ends, steps, strict=True):
            if int(ax) % r == a and not (s == 0 and e >= BIG - 1 and st == 1):
                raise NotSeparable("Slice along the batch axis")
        return a

    def gather(self, op):
        data, idx = op.input(0), op.input(1)
        sd, si = self.st(data), self.st(idx)
        g = int(op.attr("axis", 0)) % self.rank(data)
        if isinstance(sd, int) and si == FREE:
            if sd == g:
                raise NotSeparable("Gather along the batch axis")
            return sd if sd < g else sd + self.rank(idx) - 1
        if sd == FREE and isinstance(si, int):
            return g + si
        raise NotSeparable("Gather: data and indices both carry the batch")

    def split(self, op):
        x = op.input(0)
        a, r = self.axis_at(x), self.rank(x)
        self.free(*op.inputs[1:])
        if int(op.attr("axis", 0)) % r == a:
            raise NotSeparable("Split along the batch axis")
        return a

    def expand(self, op):
        x = op.input(0)
        a = self.axis_at(x)
        self.free(op.input(1))
        return a + self.rank(op.output(0)) - self.rank(x)

    def tile(self, op):
        a = self.axis_at(op.input(0))
        self.free(op.input(1))
        reps = self.ints(op.input(1))
        if reps is None or reps[a] != 1:
            raise NotSeparable("Tile along the batch axis")
        return a

    def pad(self, op):
        x = op.input(0)
        a, r = self.axis_at(x), self.rank(x)
        self.free(*op.inputs[1:])
        pads = self.ints(op.input(1)) if len(op.inputs) > 1 else [int(p) for p in op.attr("pads", [])]
        axes = self.ints(op.inputs[3]) if len(op.inputs) > 3 and op.inputs[3] is not None else list(range(r))
        if pads is None or axes is None:
            raise NotSeparable("Pad: pads not constant")
        n = len(axes)
        for i, ax in enumerate(axes):
            if int(ax) % r == a and (pads[i] or pads[i + n]):
                raise NotSeparable("Pad along the batch axis")
        return a

    def shape_of(self, op):
        self.axis_at(op.input(0))
        return SHAPE

    def rnn(self, op):
        layout = int(op.attr("layout", 0) or 0)
        xb = 0 if layout else 1
        ins = list(op.inputs) + [None] * (9 - len(op.inputs))
        if op.attr("irc_projected", 0):  # input 0 is the projected table, input 8 the ids (batch, seq)
            self.free(ins[0])
            if self.axis_at(ins[8]) != 0:
                raise NotSeparable("RNN: ids without the batch on axis 0")
        elif self.axis_at(ins[0]) != xb:
            raise NotSeparable("RNN: batch not on X's batch axis")
        self.free(ins[1], ins[2], ins[3], ins[7])
        if ins[4] is not None and self.axis_at(ins[4]) != 0:
            raise NotSeparable("RNN: sequence_lens")
        for v in (ins[5], ins[6]):
            if v is not None and self.axis_at(v) != xb:
                raise NotSeparable("RNN: initial state without the batch")
        return [0 if layout else 2, xb, xb]

    def topk(self, op):
        x = op.input(0)
        a, r = self.axis_at(x), self.rank(x)
        self.free(*op.inputs[1:])
        if int(op.attr("axis", -1)) % r == a:
            raise NotSeparable("TopK along the batch axis")
        return a

    def cumsum(self, op):
        x = op.input(0)
        a, r = self.axis_at(x), self.rank(x)
        self.free(op.input(1))
        axis = self.ints(op.input(1))
        if axis is None or axis[0] % r == a:
            raise NotSeparable("CumSum along the batch axis")
        return a

    def shape_rule(self, op, k: str):
        """Ops reading a SHAPE value: shape arithmetic, or the shape operand of a few ops."""
        states = [self.st(v) for v in op.inputs if v is not None]
        if k in SHAPE_OPS and all(s in (FREE, SHAPE) for s in states):
            return [SHAPE] * len(op.outputs)
        shape_slot = {"Reshape": 1, "Expand": 1, "ConstantOfShape": 0}.get(k)
        if shape_slot is None or any(s == SHAPE for i, s in enumerate(self.st(v) for v in op.inputs) if i != shape_slot):
            raise NotSeparable(f"{k}: reads a shape of the batch")
        y = op.output(0)
        b = self.symbol_axis(y)
        if k == "ConstantOfShape":
            return b
        x = op.input(0)
        sx = self.st(x)
        if k == "Reshape":
            return self._fold_check(x, self.axis_at(x), y, b)
        if isinstance(sx, int) and sx + self.rank(y) - self.rank(x) != b:
            raise NotSeparable("Expand: batch axis moves")
        return b  # Expand of a free value to a shape holding the batch: the same per item


def _candidates(graph: Graph, inputs: list[Value]) -> list[str]:
    syms: list[str] = []
    for v in inputs:
        for d in v.shape or ():
            if isinstance(d, str) and d and d not in syms:
                syms.append(d)
    return syms


def batch_split(graph: Graph, ops=None) -> BatchSplit | None:
    """How to split ``graph`` (prepared) along its batch, or None when it is not provably separable.

    ``ops``: the ops that compute the outputs, in topological order (default: every op).
    """
    inputs = [v for v in graph.inputs if v.name not in graph.initializers]
    if not inputs or not graph.outputs:
        return None
    imports = graph.model.opset_imports if graph.model else {}
    opset = int(imports.get("", imports.get("ai.onnx", 21)))
    ops = graph.topological_ops() if ops is None else ops
    for symbol in _candidates(graph, inputs):
        an = _Analysis(graph, symbol, opset)
        try:
            split_inputs = {}
            for v in inputs:
                if v.shape is None:
                    raise NotSeparable(f"{v.name}: unknown shape")
                hits = [i for i, d in enumerate(v.shape) if d == symbol]
                if len(hits) > 1:
                    raise NotSeparable(f"{v.name}: batch symbol twice")
                an.state[v] = hits[0] if hits else FREE
                if hits:
                    split_inputs[v.name] = hits[0]
            an.run(ops)
            outs = [an.st(v) for v in graph.outputs]
            if not all(isinstance(s, int) for s in outs):
                continue
            if any(an.symbol_axis(v) != s for v, s in zip(graph.outputs, outs, strict=True)):
                continue
            largest = max((_item_elements(v, symbol) for op in ops for v in op.outputs), default=0)
            axes = {v.name: s for v, s in an.state.items() if isinstance(s, int)}
            return BatchSplit(symbol, split_inputs, outs, item_flops(graph, ops, symbol), 4 * largest, axes)
        except (NotSeparable, ValueError, TypeError, IndexError, KeyError, ZeroDivisionError):
            continue  # anything a rule did not foresee: not separable
    return None



def _item_elements(v: Value | None, symbol: str) -> int:
    """Elements of one batch item of ``v`` (0 when its other dims are not all static)."""
    if v is None or v.shape is None or symbol not in v.shape:
        return 0
    rest = [d for d in v.shape if d != symbol]
    return prod(rest) if all(isinstance(d, int) for d in rest) else 0


def item_flops(graph: Graph, ops, symbol: str) -> int:
    """Rough cost of one batch item: 2 x output elements x reduction length for the ops
    with weights (Conv, Gemm, MatMul, attention, recurrences), output elements elsewhere."""
    total = 0
    for op in ops:
        k = key(op)
        out = _item_elements(op.outputs[0] if op.outputs else None, symbol)

        def dims(i: int, op=op) -> tuple:
            v = op.inputs[i] if i < len(op.inputs) else None
            c = None if v is None else graph.constant_value(v)
            shape = tuple(np.shape(c)) if c is not None else (None if v is None else v.shape)
            return tuple(d if isinstance(d, int) else 1 for d in (shape or ()))

        reduce = 1
        if k in ("Conv", "ConvTranspose") or k.startswith("irc.Conv"):
            reduce = 2 * prod(dims(1)[1:])
        elif k == "Gemm" or k.startswith("irc.Gemm"):
            a = dims(0)
            reduce = 2 * (a[0] if op.attr("transA", 0) else a[-1]) if a else 1
        elif k == "MatMul" or k.startswith("irc.MatMul") or k == "irc.AttentionChain":
            a, b = dims(0), dims(1)
            reduce = 2 * a[-1] if a else 1
            if k == "irc.AttentionChain" and len(b) >= 2:
                reduce = 4 * b[-2]  # q k^T and p v, each over the key positions
        elif k in ("LSTM", "GRU", "RNN"):
            w, r = dims(1), dims(2)
            gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[k]
            inner = (0 if op.attr("irc_projected", 0) else (w[-1] if w else 0)) + (r[-1] if r else 0)
            reduce = 2 * gates * inner
        total += out * reduce
    return int(total)
