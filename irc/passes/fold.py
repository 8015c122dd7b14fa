"""Constant folding.

Every standard op whose inputs are all known at compile time is evaluated once
and replaced by an initializer; ``Constant`` nodes become initializers too (the
light model-zoo graphs store their weights as ``ConstantOfShape``/``Constant``).

Float32 arithmetic is evaluated in float64 and rounded once at the end, so a
folded chain is at least as accurate as running it. The size of every result is
computed from shapes *before* anything is evaluated: no tensor over the per-tensor
limit (default 256 MiB) or over the total budget (default 2 GiB added) is ever
materialized (a ``ConstantOfShape`` of 10^12 elements is left alone). The one
exception to the per-tensor limit is a ``ConstantOfShape`` read only as layer
weights (how the light zoo stores fully connected layers of 300-400 MB): it is a
parameter the model has anyway, and only the total budget applies to it.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto, helper

from ..ir import Graph, Op, Tensor
from ..ir.onnx_io import _write_attr
from .manager import Context, PassResult, register
from .util import STANDARD, as_tensor, const, np_dtype, static_shape, weights_in_inputs

NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                    "Multinomial", "Bernoulli"}
NEVER_FOLD = NONDETERMINISTIC | {"If", "Loop", "Scan", "SequenceConstruct", "SequenceEmpty",
                                 "Optional", "OptionalGetElement", "OptionalHasElement"}
# Ops evaluated in float64 when their float inputs are float32 (then rounded back).
FLOAT64_OPS = {
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Exp", "Log", "Neg", "Abs",
    "Tanh", "Sigmoid", "Erf", "Sin", "Cos", "Sum", "Mean", "MatMul", "Gemm", "Conv",
    "ReduceSum", "ReduceMean", "ReduceProd", "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp",
    "Softmax", "LogSoftmax", "BatchNormalization", "LayerNormalization", "Relu", "LeakyRelu",
    "HardSigmoid", "Elu", "Selu", "Softplus", "Clip",
}


@register("fold", 1, "constant folding (Constant nodes and all-constant ops) with size guards")
def fold(graph: Graph, ctx: Context) -> PassResult:
    result = PassResult()
    for op in graph.topological_ops():
        if op.domain not in STANDARD or op.op_type in NEVER_FOLD:
            continue
        if op.op_type == "Constant":
            _constant_to_initializer(graph, op, result)
            continue
        if not op.inputs or not all(v is None or _is_constant(graph, v) for v in op.inputs):
            continue  # decided without decoding any weights
        inputs = [None if v is None else const(graph, v) for v in op.inputs]
        if any(a is None for v, a in zip(op.inputs, inputs, strict=True) if v is not None):
            continue
        outs = op.outputs
        if any(v is not None and v.type_proto is not None for v in outs):
            continue  # sequences, optionals: not tensors
        _fold_op(graph, op, inputs, ctx, result)
    return result


def _is_constant(graph: Graph, value) -> bool:
    if value.const is not None:
        return value not in graph.inputs or weights_in_inputs(graph)
    op = graph.producer(value)
    return op is not None and op.op_type == "Constant" and op.domain in STANDARD


def _constant_to_initializer(graph: Graph, op: Op, result: PassResult) -> None:
    out = op.output(0)
    if out is None or "sparse_value" in op.attrs:
        return
    attr = op.attrs.get("value")
    data = attr.value if attr is not None else graph.constant_value(out)
    if data is None:
        return
    graph.make_constant(out, data if isinstance(data, Tensor) else as_tensor(np.asarray(data)))
    graph.remove_op(op, keep_outputs=True)
    result.note(f"Constant {out.name} -> initializer")


def _fold_op(graph: Graph, op: Op, inputs: list, ctx: Context, result: PassResult) -> None:
    elems = _estimate_elements(op, inputs)
    if elems is None:
        return
    known = [np.dtype(np_dtype(v.dtype)).itemsize for v in op.outputs if v is not None and v.dtype]
    # Without inferred output types assume the widest element (8 bytes).
    itemsize = max(known) if len(known) == len([v for v in op.outputs if v is not None]) else 8
    nbytes = elems * itemsize
    per_tensor = float("inf") if _is_stored_weight(graph, op) else ctx.fold_limit
    if nbytes > per_tensor or ctx.folded_bytes + nbytes > ctx.fold_total:
        result.notes.append(f"{op.op_type} {op.name}: not folded, result of {nbytes} bytes "
                            "exceeds the fold limit")
        return
    try:
        values = evaluate(op, inputs, ctx.opset())
    except Exception:
        return  # an op the evaluators cannot run stays in the graph
    outs = op.outputs
    arrays = []
    for v, arr in zip(outs, values, strict=False):
        if v is None:
            arrays.append(None)
            continue
        arr = np.asarray(arr)
        want = np_dtype(v.dtype)
        if want is not None and arr.dtype != want:
            if arr.dtype.kind == "O" or np.dtype(want).kind == "O":
                return
            arr = arr.astype(want)
        if static_shape(v) is not None and tuple(arr.shape) != static_shape(v):
            return  # the evaluator disagrees with shape inference: do not trust it
        arrays.append(arr)
    if len(arrays) < sum(v is not None for v in outs):
        return
    for v, arr in zip(outs, arrays, strict=False):
        if v is not None:
            graph.make_constant(v, as_tensor(arr))
            ctx.folded_bytes += arr.nbytes
    graph.remove_op(op, keep_outputs=True)
    result.note(f"folded {op.op_type} {op.name or outs[0].name}")


_WEIGHT_READERS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization",
                   "InstanceNormalization", "LayerNormalization", "PRelu"}


def _is_stored_weight(graph: Graph, op: Op) -> bool:
    """A ConstantOfShape read only as the weights of layers is how some exporters store
    parameters (the light model zoo): it is folded whatever its size, within the total
    budget, since the model already holds that tensor conceptually."""
    if op.op_type != "ConstantOfShape":
        return False
    out = op.output(0)
    uses = graph.uses(out)
    return bool(uses) and not graph.is_output(out) and all(
        slot >= 1 and u.op_type in _WEIGHT_READERS and u.domain in STANDARD for u, slot in uses)


def _estimate_elements(op: Op, inputs: list) -> int | None:
    """Elements of all outputs, from shapes only; None if it cannot be bounded."""
    shapes = [static_shape(v) for v in op.outputs if v is not None]
    if shapes and all(s is not None for s in shapes):
        return sum(math.prod(s) for s in shapes)
    t = op.op_type
    try:
        if t == "ConstantOfShape":
            return math.prod(int(x) for x in inputs[0].ravel())
        if t == "Expand":
            return math.prod(np.broadcast_shapes(inputs[0].shape, tuple(int(x) for x in inputs[1])))
        if t == "Tile":
            return inputs[0].size * math.prod(int(x) for x in inputs[1].ravel())
        if t == "Range":
            start, limit, delta = (float(a) for a in inputs[:3])
            return max(0, math.ceil((limit - start) / delta)) if delta else None
        if t in ("Resize", "Upsample", "Pad", "OneHot", "Col2Im"):
            return None
    except (ValueError, TypeError, OverflowError):
        return None
    arrays = [a for a in inputs if a is not None]
    rank = max((a.ndim for a in arrays), default=0)
    dims = [1] * rank
    for a in arrays:
        for i, d in enumerate(a.shape[::-1]):
            dims[rank - 1 - i] = max(dims[rank - 1 - i], d)
    return max(math.prod(dims), sum(a.size for a in arrays)) * max(1, op.n_outputs)


# -- evaluation -------------------------------------------------------------------


def evaluate(op: Op, inputs: list, opset: int) -> list[np.ndarray]:
    """Outputs of ``op`` on constant ``inputs``: numpy fast paths, onnx's reference
    evaluator (float32 promoted to float64), then onnxruntime."""
    fast = _fast_path(op, inputs)
    if fast is not None:
        return fast
    promote = op.op_type in FLOAT64_OPS and any(a is not None and a.dtype == np.float32
                                                for a in inputs)
    if promote:
        try:
            feeds = [None if a is None else (a.astype(np.float64) if a.dtype == np.float32 else a)
                     for a in inputs]
            outs = _reference(op, feeds, opset)
            return [o.astype(np.float32) if o.dtype == np.float64 else o for o in outs]
        except Exception:
            pass
    try:
        return _reference(op, inputs, opset)
    except Exception:
        return _onnxruntime(op, inputs, opset)


def _fast_path(op: Op, inputs: list) -> list[np.ndarray] | None:
    """Exact numpy versions of the data-movement ops that dominate exported graphs."""
    t, x = op.op_type, inputs[0]
    if t == "ConstantOfShape":
        fill = op.attr("value")
        fill = fill.numpy() if fill is not None else np.zeros(1, np.float32)
        return [np.full(tuple(int(d) for d in x), fill.ravel()[0], dtype=fill.dtype)]
    if t == "Identity":
        return [x]
    if t == "Unsqueeze":
        axes = inputs[1] if len(inputs) > 1 and inputs[1] is not None else op.attr("axes")
        if axes is None:
            return None
        axes = [int(a) for a in np.asarray(axes).ravel()]
        rank = x.ndim + len(axes)
        out = x
        for a in sorted(a + rank if a < 0 else a for a in axes):
            out = np.expand_dims(out, a)
        return [out]
    if t == "Reshape" and not op.attr("allowzero", 0) and len(inputs) == 2:
        target = [int(d) for d in inputs[1]]
        target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
        return [x.reshape(target)]
    if t == "Transpose":
        perm = op.attr("perm")
        return [np.transpose(x, perm)]
    if t == "Shape" and op.attr("start") is None and op.attr("end") is None:
        return [np.array(x.shape, np.int64)]
    return None


def _node_model(op: Op, inputs: list, opset: int):
    names = [f"i{k}" if a is not None else "" for k, a in enumerate(inputs)]
    outs = [f"o{k}" if v is not None else "" for k, v in enumerate(op.outputs)]
    node = helper.make_node(op.op_type, names, outs, domain=op.domain)
    node.attribute.extend(_write_attr(a, lambda n, t: t.to_proto(n)) for a in op.attrs.values())
    graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                    for n, a in zip(names, inputs, strict=True) if a is not None]
    graph_outputs = [helper.make_tensor_value_info(n, v.dtype or 0, None)
                     for n, v in zip(outs, op.outputs, strict=True) if v is not None]
    g = helper.make_graph([node], "fold", graph_inputs, graph_outputs)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    feeds = {n: a for n, a in zip(names, inputs, strict=True) if a is not None}
    return model, feeds


def _reference(op: Op, inputs: list, opset: int) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    model, feeds = _node_model(op, inputs, opset)
    return [np.asarray(o) for o in ReferenceEvaluator(model).run(None, feeds)]


def _onnxruntime(op: Op, inputs: list, opset: int) -> list[np.ndarray]:
    import onnxruntime as ort

    model, feeds = _node_model(op, inputs, opset)
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return [np.asarray(o) for o in sess.run(None, feeds)]


__all__ = ["evaluate", "fold", "TensorProto"]
