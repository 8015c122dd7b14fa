"""ONNX <-> IR without loss, and model files on disk (external data included).

Every field the IR does not model is kept in an ``extra`` proto and merged
back on the way out, so a round trip preserves what a future ONNX adds too.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from google.protobuf.message import DecodeError, Message
from onnx import (
    AttributeProto,
    GraphProto,
    ModelProto,
    NodeProto,
    TensorProto,
    TypeProto,
    ValueInfoProto,
    helper,
)

from ..errors import ModelError
from .graph import Attr, Graph, ModelInfo, Op, Value
from .tensor import Tensor

EXTERNAL_THRESHOLD = 1024
"""Tensors at least this many bytes go to the external data file when one is written."""

INLINE_LIMIT = 1_800_000_000
"""Above this many bytes of weights a model must use external data (protobuf's 2 GiB cap)."""

TensorWriter = Callable[[str, Tensor], TensorProto]


# -- reading -------------------------------------------------------------------


def load(path: str | os.PathLike) -> Graph:
    """Read an ``.onnx`` file into the IR; external data stays on disk until used."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, expected an .onnx file")
    model = ModelProto()
    try:
        with open(path, "rb") as f:
            model.ParseFromString(f.read())
    except DecodeError as exc:
        raise ModelError(f"{path}: not a valid ONNX protobuf ({exc})") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror})") from None
    if not model.HasField("graph"):
        raise ModelError(f"{path}: not an ONNX model (no graph)")
    return from_onnx(model, base_dir=str(path.parent))


def from_onnx(model: ModelProto | str | os.PathLike, base_dir: str | None = None) -> Graph:
    """Build the IR of an ONNX model (a ModelProto or a path)."""
    if not isinstance(model, ModelProto):
        return load(model)
    graph = _read_graph(model.graph, None, base_dir)
    graph.model = ModelInfo(
        ir_version=model.ir_version,
        opset_imports={o.domain: o.version for o in model.opset_import},
        producer_name=model.producer_name,
        producer_version=model.producer_version,
        domain=model.domain,
        model_version=model.model_version,
        doc_string=model.doc_string,
        metadata_props={p.key: p.value for p in model.metadata_props},
        loaded_opsets=({o.domain: o.version for o in model.opset_import}, list(model.opset_import)),
        extra=_rest(model, {"ir_version", "opset_import", "producer_name", "producer_version",
                            "domain", "model_version", "doc_string", "metadata_props", "graph"}),
    )
    return graph


def _rest(proto: Message, modeled: set[str]) -> Message | None:
    """A proto holding what the IR does not model: unmodeled fields, and modeled scalar
    fields that were explicitly set to their default (proto2 records that presence)."""
    rest = type(proto)()
    for fd, val in proto.ListFields():
        if fd.name in modeled:
            if not fd.is_repeated and fd.message_type is None and not val:
                setattr(rest, fd.name, val)
            continue
        target = getattr(rest, fd.name)
        if fd.is_repeated:
            target.extend(val)
        elif fd.message_type is not None:
            target.CopyFrom(val)
        else:
            setattr(rest, fd.name, val)
    return rest if rest.ListFields() else None


def _start(proto_type: type, extra: Message | None, **fields) -> Message:
    """A new proto: the kept ``extra`` fields first, then the IR's non-default fields."""
    proto = proto_type()
    if extra is not None:
        proto.CopyFrom(extra)
    proto.MergeFrom(proto_type(**_nonempty(**fields)))
    return proto


def _nonempty(**fields) -> dict:
    return {k: v for k, v in fields.items() if v}


def _set_type(value: Value, type_proto: TypeProto | None, present: bool) -> None:
    if present and type_proto.HasField("tensor_type"):
        tt = type_proto.tensor_type
        value.dtype = tt.elem_type or None
        value.shape = (
            tuple(
                d.dim_value if d.HasField("dim_value") else (d.dim_param if d.HasField("dim_param") else None)
                for d in tt.shape.dim
            )
            if tt.HasField("shape")
            else None
        )
    elif present:
        value.type_proto = TypeProto()
        value.type_proto.CopyFrom(type_proto)
    kept = TypeProto()
    if present:
        kept.CopyFrom(type_proto)
    value._orig_type = (value.dtype, value.shape, kept if present else None)


def _apply_value_info(value: Value, vi: ValueInfoProto) -> None:
    _set_type(value, vi.type, vi.HasField("type"))
    value.doc_string = vi.doc_string
    value.extra = _rest(vi, {"name", "type", "doc_string"})


def _read_graph(gp: GraphProto, parent: Graph | None, base_dir: str | None) -> Graph:
    g = Graph(gp.name, parent)
    g.doc_string = gp.doc_string
    g.extra = _rest(gp, {"name", "doc_string", "node", "initializer", "sparse_initializer",
                         "input", "output", "value_info"})
    for vi in gp.input:
        _apply_value_info(g.add_input(Value(vi.name)), vi)
    for tp in gp.initializer:
        value = g.values.get(tp.name) or g.add_value(Value(tp.name, tp.data_type, tuple(tp.dims)))
        value.const = Tensor(proto=tp, base_dir=base_dir)
        g.initializers[tp.name] = value
    for sp in gp.sparse_initializer:
        name = sp.values.name
        value = g.values.get(name) or g.add_value(Value(name, sp.values.data_type, tuple(sp.dims)))
        value.sparse = sp
        g.initializers[name] = value

    # Phase 1: every op and its outputs, so inputs and subgraphs can refer to any of them.
    ops: list[tuple[Op, NodeProto]] = []
    for node in gp.node:
        op = g.add_op_node(Op(node.op_type, node.domain, node.name))
        op.doc_string = node.doc_string
        op.overload = node.overload
        op.extra = _rest(node, {"input", "output", "name", "op_type", "domain", "attribute",
                                "doc_string", "overload"})
        op.n_inputs, op.n_outputs = len(node.input), len(node.output)
        for slot, name in enumerate(node.output):
            if name:
                value = g.values.get(name) or g.add_value(Value(name))
                g.nx.add_edge(op, value, slot=slot)
        ops.append((op, node))
    # Phase 2: attributes (subgraphs read the outer values made above), then inputs.
    for op, node in ops:
        for ap in node.attribute:
            op.attrs[ap.name] = _read_attr(ap, g, base_dir)
        for slot, name in enumerate(node.input):
            if name:
                g.nx.add_edge(_resolve_or_placeholder(g, name), op, slot=slot)
        for sub in op.subgraphs:
            g._link_captures(op, sub)

    for vi in gp.value_info:
        value = g.values.get(vi.name)
        if value is not None:
            _apply_value_info(value, vi)
            value.in_value_info = True
    for vi in gp.output:
        value = _resolve_or_placeholder(g, vi.name)
        _apply_value_info(value, vi)
        g.outputs.append(value)
    return g


def _resolve_or_placeholder(g: Graph, name: str) -> Value:
    """The value named ``name``; an undefined name is kept as a dangling capture."""
    value = g.resolve(name)
    return value if value is not None else g.capture(name)


_ATTR_FIELDS = {"name", "type", "doc_string", "ref_attr_name", "f", "i", "s", "t", "g",
                "sparse_tensor", "tp", "floats", "ints", "strings", "tensors", "graphs",
                "sparse_tensors", "type_protos"}


def _read_attr(ap: AttributeProto, g: Graph, base_dir: str | None) -> Attr:
    t = ap.type
    if t == AttributeProto.GRAPH:
        value = _read_graph(ap.g, g, base_dir)
    elif t == AttributeProto.GRAPHS:
        value = [_read_graph(sub, g, base_dir) for sub in ap.graphs]
    elif t == AttributeProto.TENSOR:
        value = Tensor(proto=ap.t, base_dir=base_dir)
    elif t == AttributeProto.TENSORS:
        value = [Tensor(proto=tp, base_dir=base_dir) for tp in ap.tensors]
    elif t == AttributeProto.UNDEFINED:
        value = None
    else:
        value = helper.get_attribute_value(ap)
        if t in (AttributeProto.INTS, AttributeProto.FLOATS, AttributeProto.STRINGS,
                 AttributeProto.SPARSE_TENSORS, AttributeProto.TYPE_PROTOS):
            value = list(value)
    attr = Attr(ap.name, t, value, ap.doc_string, ap.ref_attr_name)
    attr.extra = _rest(ap, _ATTR_FIELDS)
    return attr


# -- writing -------------------------------------------------------------------


def _inline_tensor(name: str, tensor: Tensor) -> TensorProto:
    return tensor.to_proto(name)


def to_onnx(graph: Graph, tensor_writer: TensorWriter = _inline_tensor) -> ModelProto:
    """The ONNX model of the IR, weights inline (see :func:`save` for big models)."""
    info = graph.model or ModelInfo()
    model = _start(
        ModelProto, info.extra,
        ir_version=info.ir_version,
        producer_name=info.producer_name,
        producer_version=info.producer_version,
        domain=info.domain,
        model_version=info.model_version,
        doc_string=info.doc_string,
    )
    if info.loaded_opsets and info.loaded_opsets[0] == info.opset_imports:
        model.opset_import.extend(info.loaded_opsets[1])
    else:
        for domain, version in info.opset_imports.items():
            model.opset_import.add(**_nonempty(domain=domain, version=version))
    for key, val in info.metadata_props.items():
        model.metadata_props.add(key=key, value=val)
    model.graph.CopyFrom(_write_graph(graph, tensor_writer))
    return model


def _value_info(value: Value) -> ValueInfoProto:
    vi = _start(ValueInfoProto, value.extra, name=value.name, doc_string=value.doc_string)
    orig = value._orig_type
    if orig is not None and orig[0] == value.dtype and orig[1] == value.shape:
        if orig[2] is not None:
            vi.type.CopyFrom(orig[2])
    elif value.type_proto is not None:
        vi.type.CopyFrom(value.type_proto)
    elif value.dtype is not None or value.shape is not None:
        tt = vi.type.tensor_type
        tt.elem_type = value.dtype or 0
        if value.shape is not None:
            shape = tt.shape
            shape.SetInParent()
            for d in value.shape:
                dim = shape.dim.add()
                if isinstance(d, int):
                    dim.dim_value = d
                elif isinstance(d, str):
                    dim.dim_param = d
    return vi


def _write_graph(g: Graph, tensor_writer: TensorWriter) -> GraphProto:
    gp = _start(GraphProto, g.extra, name=g.name, doc_string=g.doc_string)
    gp.input.extend(_value_info(v) for v in g.inputs)
    for name, value in g.initializers.items():
        if value.sparse is not None:
            sp = gp.sparse_initializer.add()
            sp.CopyFrom(value.sparse)
            sp.values.name = name
        elif value.const is not None:
            gp.initializer.append(tensor_writer(name, value.const))
    for op in g.topological_ops():
        gp.node.append(_write_node(op, tensor_writer))
    gp.output.extend(_value_info(v) for v in g.outputs)
    skip = {id(v) for v in g.inputs} | {id(v) for v in g.outputs}
    for value in sorted(g.values.values(), key=lambda v: v.order):
        if (id(value) in skip or value.name in g.captured or value.name in g.initializers
                or not g.nx.degree(value)):
            continue
        if value.dtype is not None or value.type_proto is not None or value.in_value_info:
            gp.value_info.append(_value_info(value))
    return gp


def _write_node(op: Op, tensor_writer: TensorWriter) -> NodeProto:
    node = _start(NodeProto, op.extra, op_type=op.op_type, domain=op.domain, name=op.name,
                  doc_string=op.doc_string, overload=op.overload)
    node.input.extend(v.name if v is not None else "" for v in op.inputs)
    node.output.extend(v.name if v is not None else "" for v in op.outputs)
    for attr in op.attrs.values():
        node.attribute.append(_write_attr(attr, tensor_writer))
    return node


def _tensor_name(tensor: Tensor) -> str:
    proto = tensor.proto_template()
    return proto.name if proto is not None else ""


def _write_attr(attr: Attr, tensor_writer: TensorWriter) -> AttributeProto:
    ap = _start(AttributeProto, attr.extra, name=attr.name, type=attr.type,
                doc_string=attr.doc_string, ref_attr_name=attr.ref_attr_name)
    t, v = attr.type, attr.value
    if t == AttributeProto.FLOAT:
        ap.f = v
    elif t == AttributeProto.INT:
        ap.i = v
    elif t == AttributeProto.STRING:
        ap.s = v if isinstance(v, bytes) else str(v).encode()
    elif t == AttributeProto.TENSOR:
        ap.t.CopyFrom(tensor_writer(_tensor_name(v), v))
    elif t == AttributeProto.GRAPH:
        ap.g.CopyFrom(_write_graph(v, tensor_writer))
    elif t == AttributeProto.SPARSE_TENSOR:
        ap.sparse_tensor.CopyFrom(v)
    elif t == AttributeProto.TYPE_PROTO:
        ap.tp.CopyFrom(v)
    elif t == AttributeProto.FLOATS:
        ap.floats.extend(v)
    elif t == AttributeProto.INTS:
        ap.ints.extend(v)
    elif t == AttributeProto.STRINGS:
        ap.strings.extend(s if isinstance(s, bytes) else str(s).encode() for s in v)
    elif t == AttributeProto.TENSORS:
        ap.tensors.extend(tensor_writer(_tensor_name(x), x) for x in v)
    elif t == AttributeProto.GRAPHS:
        ap.graphs.extend(_write_graph(x, tensor_writer) for x in v)
    elif t == AttributeProto.SPARSE_TENSORS:
        ap.sparse_tensors.extend(v)
    elif t == AttributeProto.TYPE_PROTOS:
        ap.type_protos.extend(v)
    return ap


def uses_external_data(graph: Graph) -> bool:
    """True if any tensor of the model (subgraphs included) came from external data."""
    for g in graph.all_graphs():
        if any(v.const is not None and v.const.is_external for v in g.initializers.values()):
            return True
        for op in g.ops:
            for a in op.attrs.values():
                if a.type == AttributeProto.TENSOR and a.value.is_external:
                    return True
    return False


def weight_bytes(graph: Graph) -> int:
    return sum(g.parameter_stats()[1] for g in graph.all_graphs())


def save(graph: Graph, path: str | os.PathLike, *, external: bool | None = None,
         threshold: int = EXTERNAL_THRESHOLD) -> Path:
    """Write the model to ``path`` atomically.

    Weights go to ``<file>.data`` beside it when ``external`` is True, or, when
    it is None, if the source model used external data or the weights exceed
    what one protobuf can hold. Tensors are streamed one at a time, so a model
    is never held twice in memory.
    """
    path = Path(path)
    if external is None:
        external = uses_external_data(graph) or weight_bytes(graph) > INLINE_LIMIT
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_model = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp_data = None
    try:
        if not external:
            model = to_onnx(graph)
            with open(tmp_model, "wb") as f:
                f.write(model.SerializeToString())
        else:
            data_name = path.name + ".data"
            fd, tmp_data = tempfile.mkstemp(prefix=f".{data_name}.", dir=path.parent)
            with os.fdopen(fd, "wb") as data:
                model = to_onnx(graph, _external_writer(data, data_name, threshold))
            with open(tmp_model, "wb") as f:
                f.write(model.SerializeToString())
            os.replace(tmp_data, path.parent / data_name)
            tmp_data = None
        os.replace(tmp_model, path)
    finally:
        for leftover in (tmp_model, tmp_data):
            if leftover and os.path.exists(leftover):
                os.unlink(leftover)
    return path


def _external_writer(data, location: str, threshold: int) -> TensorWriter:
    def write(name: str, tensor: Tensor) -> TensorProto:
        if tensor.elem_type == TensorProto.STRING or tensor.nbytes < threshold:
            return tensor.to_proto(name)
        raw = tensor.raw_bytes()
        offset = data.tell()
        pad = (-offset) % 4096  # page-aligned so runtimes can mmap each tensor
        if pad:
            data.write(b"\0" * pad)
            offset += pad
        data.write(raw)
        proto = TensorProto(name=name, data_type=tensor.elem_type, dims=tensor.dims,
                            data_location=TensorProto.EXTERNAL)
        template = tensor.proto_template()
        if template is not None:
            proto.doc_string = template.doc_string
        for key, val in (("location", location), ("offset", str(offset)), ("length", str(len(raw)))):
            proto.external_data.add(key=key, value=val)
        return proto

    return write
