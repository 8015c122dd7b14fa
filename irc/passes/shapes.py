"""Shape and type inference, and folding of the shape scaffolding exporters emit.

``shapes`` runs onnx's inference (with data propagation) on the whole model and
copies element types and shapes back onto the IR's values by name, never
replacing a known dim by a less known one; symbolic dims keep their names.

``shape_fold`` then evaluates the ``Shape -> Gather/Slice -> Unsqueeze -> Concat``
arithmetic symbolically: a shape tensor whose elements are all known becomes a
constant, and a ``Reshape`` target that mixes known sizes with symbols that are
the data's own dims becomes a constant using ``0`` (copy that dim) and ``-1``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import GraphProto, TensorProto

from ..ir import Graph, Tensor, Value, to_onnx
from .manager import Context, PassResult, register
from .util import as_tensor, const, is_std, static_shape

_DATA_FREE_BYTES = 4096
"""Initializers larger than this are handed to onnx's inference without their data."""


def _type_only_writer(name: str, tensor: Tensor) -> TensorProto:
    if tensor.elem_type == TensorProto.STRING or tensor.nbytes <= _DATA_FREE_BYTES:
        return tensor.to_proto(name)
    return TensorProto(name=name, data_type=tensor.elem_type, dims=list(tensor.dims))


@register("shapes", 1, "shape and type inference (onnx's, with data propagation)")
def infer(graph: Graph, ctx: Context) -> PassResult:
    result = PassResult()
    if graph.parent is not None:
        return result  # the root's run covers its subgraphs
    known_unknown = ctx.memo.setdefault("shapes:unresolved", set())
    lacking = _lacking(graph)
    if not lacking - known_unknown:
        return result  # only values onnx could not resolve last time lack a static shape
    model = to_onnx(graph, _type_only_writer)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:
        return result  # a model onnx cannot infer keeps the shapes it has
    _copy_back(graph, inferred.graph, result)
    known_unknown.clear()
    known_unknown.update(_lacking(graph))
    return result


def _lacking(root: Graph) -> set[int]:
    """ids of computed values without a type or a fully static shape."""
    out = set()
    for g in root.all_graphs():
        for value in g.values.values():
            if value.const is not None or value.type_proto is not None or g.producer(value) is None:
                continue
            if value.dtype is None or value.shape is None or not all(isinstance(d, int) for d in value.shape):
                out.add(id(value))
    return out


def _copy_back(graph: Graph, gp: GraphProto, result: PassResult) -> None:
    for vi in list(gp.value_info) + list(gp.output):
        value = graph.values.get(vi.name)
        if value is None or not vi.type.HasField("tensor_type"):
            continue
        if any(is_std(op, "Range") for op in graph.consumers(value)):
            # onnxruntime accepts a 1-element Range bound at run time but refuses
            # one declared as shape (1,) at load time: keep such values unannotated.
            continue
        _merge(value, vi.type.tensor_type, result)
    if not any(op.subgraphs for op in graph.ops):
        return
    nodes = gp.node
    for op, node in zip(graph.topological_ops(), nodes, strict=False):
        subs = op.subgraphs
        protos = [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
        protos += [g for a in node.attribute if a.type == onnx.AttributeProto.GRAPHS for g in a.graphs]
        for sub, sp in zip(subs, protos, strict=False):
            _copy_back(sub, sp, result)


def _merge(value: Value, tt, result: PassResult) -> None:
    if not tt.HasField("shape") and value.shape is None:
        return  # onnx.checker rejects a tensor type without a shape in value_info
    changed = False
    if value.dtype is None and tt.elem_type:
        value.dtype = tt.elem_type
        changed = True
    if tt.HasField("shape"):
        # onnx names dims it cannot relate "unk__N", afresh on every run: two such
        # names from different runs could collide, so they are kept as unknown.
        new = tuple(d.dim_value if d.HasField("dim_value")
                    else (d.dim_param if d.dim_param and not d.dim_param.startswith("unk__") else None)
                    for d in tt.shape.dim)
        merged = _better(value.shape, new)
        if merged != value.shape:
            value.shape = merged
            changed = True
    if changed:
        result.changed = True


def _better(old, new):
    """Dim-wise the more informative of two shapes (int beats symbol beats None)."""
    if old is None:
        return new
    if len(old) != len(new):
        return old
    out = []
    for a, b in zip(old, new, strict=True):
        if isinstance(a, int):
            out.append(a)
        elif isinstance(b, int):
            out.append(b)
        else:
            out.append(a if a is not None else b)
    return tuple(out)


# -- symbolic shape arithmetic --------------------------------------------------

Sym = tuple[bool, list]  # (is_scalar, elements: int or symbol name)


def _sym_of(graph: Graph, value: Value | None, memo: dict) -> Sym | None:
    """Symbolic content of a small int tensor, or None if not tracked."""
    if value is None:
        return None
    if value.name in memo:
        return memo[value.name]
    memo[value.name] = None
    if value.dtype not in (None, TensorProto.INT64, TensorProto.INT32) or (
            value.const is not None and value.const.size > 64):
        return None  # only small integer tensors carry shapes; never decode weights
    data = const(graph, value)
    if data is not None:
        out = None
        if data.dtype.kind in "iu" and data.ndim <= 1 and data.size <= 64:
            out = (data.ndim == 0, [int(x) for x in data.ravel()])
    else:
        op = graph.producer(value)
        out = _sym_op(graph, op, memo) if op is not None and op.domain in ("", "ai.onnx") else None
    memo[value.name] = out
    return out


def _sym_op(graph: Graph, op, memo) -> Sym | None:
    t = op.op_type
    if op.n_outputs != 1 and t != "Shape":
        return None
    if t == "Shape":
        x = op.input(0)
        if x is None or x.shape is None or any(d is None for d in x.shape):
            return None
        dims = list(x.shape)
        start, end = op.attr("start", 0), op.attr("end", None)
        return (False, dims[slice(start, end)])
    if t not in ("Cast", "Identity", "Gather", "Slice", "Concat", "Unsqueeze", "Squeeze"):
        return None
    args = [_sym_of(graph, v, memo) for v in op.inputs]
    if t in ("Cast", "Identity"):
        if t == "Cast" and op.attr("to") not in (TensorProto.INT64, TensorProto.INT32):
            return None
        return args[0]
    if t == "Gather":
        data, idx = args[0], args[1]
        if data is None or idx is None or data[0] or op.attr("axis", 0) != 0:
            return None
        n = len(data[1])
        try:
            picked = [data[1][i + n if i < 0 else i] for i in idx[1]]
        except (IndexError, TypeError):
            return None
        return (idx[0], picked)
    if t == "Slice":
        return _sym_slice(op, args)
    if t == "Concat":
        if any(a is None or a[0] for a in args) or op.attr("axis", 0) not in (0, -1):
            return None
        return (False, [d for a in args for d in a[1]])
    if t == "Unsqueeze":
        if args[0] is None or not args[0][0]:
            return None
        return (False, list(args[0][1]))
    if t == "Squeeze":
        if args[0] is None or args[0][0] or len(args[0][1]) != 1:
            return None
        return (True, list(args[0][1]))
    return None


def _sym_slice(op, args) -> Sym | None:
    data = args[0]
    if data is None or data[0]:
        return None
    if op.n_inputs < 3:  # opset < 10: attributes
        starts, ends = op.attr("starts"), op.attr("ends")
        axes, steps = op.attr("axes", [0]), [1]
    else:
        if any(a is None for a in args[1:3]):
            return None
        starts, ends = args[1][1], args[2][1]
        axes = args[3][1] if len(args) > 3 and args[3] is not None else [0]
        steps = args[4][1] if len(args) > 4 and args[4] is not None else [1]
    if not all(isinstance(x, int) for x in list(starts) + list(ends) + list(steps)):
        return None
    if list(axes) not in ([0], [-1]) or len(starts) != 1:
        return None
    big = 1 << 62
    s, e, st = (max(min(int(v), big), -big) for v in (starts[0], ends[0], steps[0]))
    if st == 0:
        return None
    return (False, data[1][slice(s, e, st)])


@register("shape_fold", 1, "fold Shape/Gather/Slice/Concat scaffolding and symbolic Reshape targets")
def shape_fold(graph: Graph, ctx: Context) -> PassResult:
    result = PassResult()
    memo: dict = {}
    for op in graph.topological_ops():
        if op not in graph.nx:
            continue  # removed earlier in this sweep
        if is_std(op, "Reshape") and const(graph, op.input(1)) is None:
            _fold_reshape_target(graph, op, memo, result)
            continue
        if op.domain not in ("", "ai.onnx") or op.n_outputs != 1 or op.op_type == "Constant":
            continue
        if is_std(op, "Size"):
            shape = static_shape(op.input(0))
            if shape is not None:
                _to_const(graph, op, np.array(int(np.prod(shape)), np.int64), result)
            continue
        out = op.output(0)
        if out is None or out.name in graph.initializers:
            continue
        sym = _sym_of(graph, out, memo)
        if sym is not None and all(isinstance(d, int) for d in sym[1]):
            dtype = np.int32 if out.dtype == TensorProto.INT32 else np.int64
            arr = np.array(sym[1][0] if sym[0] else sym[1], dtype=dtype)
            _to_const(graph, op, arr, result)
    return result


def _to_const(graph: Graph, op, array: np.ndarray, result: PassResult) -> None:
    out = op.output(0)
    if out.dtype is not None and out.dtype != onnx.helper.np_dtype_to_tensor_dtype(array.dtype):
        return
    graph.make_constant(out, as_tensor(array))
    graph.remove_op(op, keep_outputs=True)
    result.note(f"{op.op_type} {op.name or out.name} -> constant {array.tolist()}")


def _fold_reshape_target(graph: Graph, op, memo: dict, result: PassResult) -> None:
    """Reshape(x, [s0, 4, -1]) where s0 is x's own dim 0 -> Reshape(x, [0, 4, -1])."""
    if op.attr("allowzero", 0):
        return
    data, target = op.input(0), op.input(1)
    sym = _sym_of(graph, target, memo)
    if sym is None or sym[0] or data.shape is None:
        return
    dims = []
    for i, d in enumerate(sym[1]):
        if isinstance(d, int):
            dims.append(d)
        elif i < len(data.shape) and data.shape[i] == d:
            dims.append(0)
        else:
            dims.append(None)
    unknown = [i for i, d in enumerate(dims) if d is None]
    if len(unknown) > 1 or (unknown and -1 in dims):
        return
    if unknown:
        dims[unknown[0]] = -1
    new = graph.add_initializer(graph.unique_name(target.name + "_static"), np.array(dims, np.int64))
    graph.set_input(op, 1, new)
    result.note(f"Reshape {op.name}: target {sym[1]} -> {dims}")


shape_fold.__doc__ = "Fold shape scaffolding; see the module docstring."
