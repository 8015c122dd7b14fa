"""Getting a graph ready for emission: optimize, fix the batch, infer types, fold constants."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ...ir import Graph
from ...ir.onnx_io import from_onnx, to_onnx

# Ops never folded: random generators and ops whose outputs may be large yet cheap to compute.
NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
           "Bernoulli", "If", "Loop", "Scan", "SequenceConstruct", "Dropout"}
MAX_FOLD_ELEMENTS = 1 << 26


def _optimize(graph: Graph, level: int) -> Graph:
    """The passes pipeline when the passes package is present (it is optional for correctness)."""
    try:
        from ... import passes  # type: ignore[attr-defined]
    except ImportError:
        return graph
    optimize = getattr(passes, "optimize", None)
    if optimize is None or level <= 0:
        return graph
    result = optimize(graph, level=level)
    return result if isinstance(result, Graph) else graph


def _fix_batch(model: onnx.ModelProto, batch: int | None) -> None:
    if batch is None:
        return
    inits = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits or not inp.type.HasField("tensor_type"):
            continue
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = batch


def _infer(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # inference is best effort: the emitter reports what stays unknown
        return model


def _static_shape(vi_shapes: dict, name: str):
    shape = vi_shapes.get(name)
    if shape is None or any(not isinstance(d, int) for d in shape):
        return None
    return shape


def _value_shapes(model: onnx.ModelProto) -> dict:
    shapes = {}
    g = model.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        t = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and t.HasField("shape"):
            shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    return shapes


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Evaluate every node whose inputs are all known (and Shape/Size of static shapes)."""
    from onnx.reference import ReferenceEvaluator

    g = model.graph
    known = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    graph_inputs = {i.name for i in g.input} - set(known)
    shapes = _value_shapes(model)
    opset = [o for o in model.opset_import]
    kept, folded = [], 0
    for node in g.node:
        value = _fold_node(node, known, graph_inputs, shapes, opset, ReferenceEvaluator)
        if value is None:
            kept.append(node)
            continue
        for name, array in zip(node.output, value, strict=False):
            if name:
                known[name] = np.asarray(array)
        folded += 1
    if not folded:
        return model
    outputs = {o.name for o in g.output}
    used = {n for node in kept for n in node.input} | outputs
    for node in kept:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                used |= {n for sub in attr.g.node for n in sub.input}
    new = onnx.ModelProto()
    new.CopyFrom(model)
    del new.graph.node[:]
    new.graph.node.extend(kept)
    del new.graph.initializer[:]
    new.graph.initializer.extend(numpy_helper.from_array(a, n) for n, a in known.items()
                                 if n in used and n not in graph_inputs)
    # Graph outputs that became constant still need a producer: an Identity of the constant.
    produced = {o for node in kept for o in node.output}
    for out in g.output:
        if out.name not in produced and out.name in known and out.name not in graph_inputs:
            const_name = out.name + "__const"
            new.graph.initializer.append(numpy_helper.from_array(known[out.name], const_name))
            new.graph.node.append(helper.make_node("Identity", [const_name], [out.name]))
    return new


def _fold_node(node, known, graph_inputs, shapes, opset, evaluator):
    if node.domain not in ("", "ai.onnx") or node.op_type in NO_FOLD:
        return None
    if node.op_type in ("Shape", "Size") and node.input[0] not in known:
        shape = _static_shape(shapes, node.input[0])
        if shape is None:
            return None
        if node.op_type == "Size":
            return [np.array(int(np.prod(shape)), np.int64)]
        start = next((a.i for a in node.attribute if a.name == "start"), 0)
        end = next((a.i for a in node.attribute if a.name == "end"), len(shape))
        return [np.array(shape, np.int64)[slice(start, end)]]
    if any(n and n not in known for n in node.input):
        return None
    if any(n in graph_inputs for n in node.input):
        return None
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
        return None
    try:
        sub = helper.make_graph(
            [node], "fold",
            [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(known[n].dtype), None)
             for n in dict.fromkeys(i for i in node.input if i)],
            [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in node.output if o])
        m = helper.make_model(sub, opset_imports=opset)
        feeds = {n: known[n] for n in node.input if n}
        outs = evaluator(m).run(None, feeds)
    except Exception:  # anything the reference cannot evaluate stays a node
        return None
    if any(not isinstance(o, np.ndarray) or o.size > MAX_FOLD_ELEMENTS for o in outs):
        return None
    return outs


def prepare(graph: Graph, batch: int | None = None, level: int = 3, fold: bool = True) -> Graph:
    """A copy of ``graph`` ready for the emitter: types known everywhere it can be, constants folded."""
    graph = _optimize(from_onnx(to_onnx(graph)), level)
    model = to_onnx(graph)
    _fix_batch(model, batch)
    model = _infer(model)
    if fold:
        for _ in range(3):
            folded = fold_constants(model)
            if folded is model:
                break
            model = _infer(folded)
    graph = from_onnx(model)
    if level >= 3:
        from .ops.embed import fold_embedding_conv
        from .ops.rnn import fold_embedding_projection
        fold_embedding_projection(graph)
        fold_embedding_conv(graph)
        from .ops.attention import fold_attention_chain
        fold_attention_chain(graph)
    return graph
