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
