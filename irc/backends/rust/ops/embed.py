"""An embedding feeding a 1-D convolution, folded into one lookup table (`irc.EmbedConv`)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from ....ir import Graph
from .base import OpCtx, op
from .matmul import ACTIVATIONS, act_expr

# Largest folded table (elements), and at most this many times the embedding's size.
MAX_TABLE = 1 << 23
MAX_GROWTH = 16


@op("irc.EmbedConv")
def embed_conv(c: OpCtx) -> str:
    """`rt::embed_conv1d`: inputs table (const), ids, bias; attributes from the fold below."""
    c.need(c.t(0) == "f32" and c.t(1) == "i64" and (not c.has(2) or c.t(2) == "f32"), "dtypes")
    act = c.a("act", b"")
    act = act.decode() if isinstance(act, bytes) else str(act)
    c.need(act in ("",) + ACTIVATIONS, f"activation {act!r}")
    act_rs = act_expr(c, act) if act else "rt::Act::None"
    pads = [int(v) for v in c.attr_list("pads")] or [0, 0]
    bias = f"Some({c.x(2)})" if c.has(2) else "None"
    keep = int(c.a("reduce_max", -1))
    reduce = "None" if keep < 0 else f"Some({'true' if keep else 'false'})"
    return (f"rt::embed_conv1d({c.x(0)}, {c.x(1)}, {bias}, {int(c.a('kernel'))}, {int(c.a('stride', 1))}, "
            f"{int(c.a('dilation', 1))}, [{pads[0]}, {pads[1]}], {act_rs}, {reduce})")


def _max_over_positions(graph: Graph, v) -> tuple[object, int] | None:
    """(the ReduceMax op, keepdims) when ``v``'s only reader takes its max over axis 2, else None."""
    if not _single_use(graph, v):
        return None
    red = graph.uses(v)[0][0]
    if red.op_type != "ReduceMax" or red.domain not in ("", "ai.onnx") or graph.uses(v)[0][1] != 0:
        return None
    axes = red.attr("axes")
    if axes is None and len(red.inputs) > 1 and red.inputs[1] is not None:
        axes = graph.constant_value(red.inputs[1])
    if axes is None or [int(a) for a in np.asarray(axes).reshape(-1)] not in ([2], [-1]):
        return None
    return red, int(red.attr("keepdims", 1) if red.attr("keepdims") is not None else 1)


def _single_use(graph: Graph, v) -> bool:
    return len(graph.uses(v)) == 1 and v not in graph.outputs


def fold_embedding_conv(graph: Graph) -> None:
    """`Conv(Transpose(Gather(E, ids), [0, 2, 1]), W, B)` (1-D, group 1, optionally with the
    irc activation) -> `irc.EmbedConv(T, ids, B)` with `T[v, k*O + o] = Σ_c W[o, c, k] E[v, c]`
    computed here (float64, rounded to f32), when E and W are f32 constants, the Gather and
    Transpose feed nothing else and T stays small (:data:`MAX_TABLE`, :data:`MAX_GROWTH`)."""
    for conv in list(graph.ops):
        act = ""
        if conv.domain in ("", "ai.onnx") and conv.op_type == "Conv":
            pass
        elif conv.domain == "irc" and conv.op_type.startswith("Conv") and conv.op_type[4:] in ACTIVATIONS:
            act = conv.op_type[4:]
        else:
            continue
        ins = conv.inputs
        if len(ins) < 2 or ins[0] is None:
            continue
        auto_pad = conv.attr("auto_pad", "NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
        if int(conv.attr("group", 1) or 1) != 1 or auto_pad != "NOTSET":
            continue
        tr = graph.producer(ins[0])
        if tr is None or tr.op_type != "Transpose" or [int(v) for v in (tr.attr("perm") or [])] != [0, 2, 1]:
            continue
        gather = graph.producer(tr.input(0))
        if (gather is None or gather.op_type != "Gather" or int(gather.attr("axis", 0) or 0) != 0
                or not _single_use(graph, ins[0]) or not _single_use(graph, tr.input(0))):
            continue
        table, ids = gather.input(0), gather.input(1)
        e, w = graph.constant_value(table), graph.constant_value(ins[1])
        if (e is None or w is None or ids is None or ids.dtype != TensorProto.INT64
                or ids.shape is None or len(ids.shape) != 2):
            continue
        e, w = np.asarray(e), np.asarray(w)
        if e.dtype != np.float32 or w.dtype != np.float32 or e.ndim != 2 or w.ndim != 3 or w.shape[1] != e.shape[1]:
            continue
        if len(ins) > 2 and ins[2] is not None and graph.constant_value(ins[2]) is None and ins[2].dtype != TensorProto.FLOAT:
            continue
        o, _, k = w.shape
        size = e.shape[0] * k * o
        if size > MAX_TABLE or size > MAX_GROWTH * e.size:
            continue
        folded = np.einsum("vc,ock->vko", e.astype(np.float64), w.astype(np.float64)).reshape(e.shape[0], k * o)
        t = graph.add_initializer(f"{table.name}_conv", folded.astype(np.float32))
        attrs = {"kernel": int(k), "stride": int((conv.attr("strides") or [1])[0]),
                 "dilation": int((conv.attr("dilations") or [1])[0]),
                 "pads": [int(v) for v in (conv.attr("pads") or [0, 0])], "act": act,
                 "act_alpha": float(conv.attr("act_alpha", 0.0) or 0.0),
                 "act_beta": float(conv.attr("act_beta", 0.0) or 0.0)}
        bias = ins[2] if len(ins) > 2 else None
        out = conv.output(0)
        span = (k - 1) * attrs["dilation"] + 1
        x_len = ids.shape[1]
        reduced = _max_over_positions(graph, out)
        if reduced is not None and (not isinstance(x_len, int) or x_len + sum(attrs["pads"]) < span):
            reduced = None  # a max over no positions keeps its own op
        graph.remove_op(conv, keep_outputs=True)
        if reduced is not None:
            red, keep = reduced
            attrs["reduce_max"] = keep
            red_out, red_ins = red.output(0), [v for v in red.inputs[1:] if v is not None]
            graph.remove_op(red, keep_outputs=True)
            graph.remove_value(out)
            out = red_out
            for v in red_ins:
                if not graph.uses(v) and v not in graph.outputs and graph.producer(v) is None:
                    graph.remove_value(v)
        graph.add_op("EmbedConv", [t, ids, bias], 1, outputs=[out], domain="irc", attrs=attrs, before=tr)
        for dead in (tr, gather):
            if all(v is None or (not graph.uses(v) and v not in graph.outputs) for v in dead.outputs):
                graph.remove_op(dead)
        if not graph.uses(table) and table not in graph.outputs:
            graph.remove_value(table)
