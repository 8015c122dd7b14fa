"""Attention (opset 23+): scaled dot-product attention with masks, KV cache and GQA."""

from __future__ import annotations

from .base import FLOATS, OpCtx, float_lit, op


@op("Attention")
def attention(c: OpCtx) -> str:
    t = c.types(0, FLOATS)

    def opt(i: int) -> str:
        return f"Some({c.x(i)})" if c.has(i) else "None"

    mask_t = c.t(3) if c.has(3) else "bool"
    c.need(mask_t in FLOATS | {"bool"}, f"mask dtype {mask_t}")
    if c.has(6):
        c.need(c.t(6) == "i64", "nonpad_kv_seqlen dtype")
    scale = c.a("scale")
    params = ", ".join([
        f"scale: {'None' if scale is None else f'Some({float_lit(scale)})'}",
        f"is_causal: {'true' if c.a('is_causal', 0) else 'false'}",
        f"q_num_heads: {int(c.a('q_num_heads', 0))}",
        f"kv_num_heads: {int(c.a('kv_num_heads', 0))}",
        f"softcap: {float_lit(c.a('softcap', 0.0))}",
        f"qk_matmul_output_mode: {int(c.a('qk_matmul_output_mode', 0))}",
    ])
    c.multi, c.n_results = "tuple", 4
    return (f"rt::attention::<{t}, {mask_t}>({c.x(0)}, {c.x(1)}, {c.x(2)}, {opt(3)}, {opt(4)}, {opt(5)}, "
            f"{opt(6)}, &rt::AttentionParams {{ {params} }})")


@op("RotaryEmbedding")
def rotary_embedding(c: OpCtx) -> str:
    c.types(0, FLOATS)
    pos = "None"
    if c.has(3):
        c.need(c.t(3) == "i64", "position_ids dtype")
        pos = f"Some({c.x(3)})"
    return (f"rt::rotary_embedding({c.x(0)}, {c.x(1)}, {c.x(2)}, {pos}, "
            f"{'true' if c.a('interleaved', 0) else 'false'}, {int(c.a('rotary_embedding_dim', 0))}, "
            f"{int(c.a('num_heads', 0))})")


@op("irc.AttentionChain")
def attention_chain(c: OpCtx) -> str:
    """`rt::attention_chain(q, k, v, scale)`, from :func:`fold_attention_chain`."""
    for i in range(3):
        c.types(i, {"f32"})
    return f"rt::attention_chain({c.x(0)}, {c.x(1)}, {c.x(2)}, {float_lit(float(c.a('scale', 1.0)))}_f32)"


def _only_reader(graph, v, op_type: str):
    """The single op of ``op_type`` reading ``v`` (and nothing else reads it), else None."""
    uses = graph.uses(v)
    if len(uses) != 1 or v in graph.outputs or uses[0][0].op_type != op_type or uses[0][0].domain not in ("", "ai.onnx"):
        return None
    return uses[0][0]


def fold_attention_chain(graph) -> None:
    """`MatMul(q, Transpose(k, swap last two)) [→ Mul/Div by a scalar] → Softmax(-1) →
    MatMul(·, v)` -> `irc.AttentionChain(q, k, v)` when q, k, v are f32 with equal static
    leading dims (no broadcasting) and every intermediate feeds only the next step."""
    import numpy as np
    from onnx import TensorProto

    for mm in list(graph.ops):
        if mm.op_type != "MatMul" or mm.domain not in ("", "ai.onnx") or mm not in graph.nx:
            continue
        q, kt = mm.input(0), mm.input(1)
        tr = graph.producer(kt) if kt is not None else None
        if q is None or tr is None or tr.op_type != "Transpose" or q.shape is None:
            continue
        rank = len(q.shape)
        perm = [int(p) for p in (tr.attr("perm") or [])]
        if rank < 3 or perm != list(range(rank - 2)) + [rank - 1, rank - 2] or len(graph.uses(kt)) != 1:
            continue
        k = tr.input(0)
        step = _only_reader(graph, mm.output(0), "Mul") or _only_reader(graph, mm.output(0), "Div")
        scale, soft_in = 1.0, mm.output(0)
        if step is not None:
            other = step.input(1) if step.input(0) is mm.output(0) else step.input(0)
            c = graph.constant_value(other)
            if c is None or np.asarray(c).size != 1 or (step.op_type == "Div" and step.input(1) is not other):
                continue
            c = float(np.asarray(c).reshape(-1)[0])
            if step.op_type == "Div" and c == 0.0:
                continue
            scale, soft_in = (c if step.op_type == "Mul" else 1.0 / c), step.output(0)
        soft = _only_reader(graph, soft_in, "Softmax")
        if soft is None:
            continue
        axis = soft.attr("axis")
        if axis is None:  # the default is 1 before opset 13, -1 from it
            opsets = graph.model.opset_imports if graph.model else {}
            axis = -1 if int(opsets.get("", opsets.get("ai.onnx", 0)) or 0) >= 13 else 1
        if int(axis) not in (-1, rank - 1):
            continue
        mm2 = _only_reader(graph, soft.output(0), "MatMul")
        if mm2 is None or mm2.input(0) is not soft.output(0):
            continue
        v = mm2.input(1)
        vals = (q, k, v)
        if any(x is None or x.dtype != TensorProto.FLOAT or x.shape is None or len(x.shape) != rank for x in vals):
            continue
        lead = [tuple(x.shape[:-2]) for x in vals]
        # Equal leading dims: static sizes or the same named symbol (same size at run time).
        if len(set(lead)) != 1 or not all(isinstance(d, (int, str)) and d != "" for d in lead[0]):
            continue
        if step is not None and step.op_type == "Div" and float(np.float32(1.0 / c)) * c != 1.0:
            continue  # 1/c is not exact in f32: keep the division's rounding
        out, order = mm2.output(0), mm2.order
        for dead in (mm2, soft) + ((step,) if step is not None else ()) + (mm, tr):
            graph.remove_op(dead, keep_outputs=dead is mm2)
        fused = graph.add_op("AttentionChain", [q, k, v], 1, outputs=[out], domain="irc", attrs={"scale": scale})
        fused.order = order
