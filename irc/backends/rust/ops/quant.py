"""QuantizeLinear/DequantizeLinear, window generators, EyeLike, Compress, CenterCropPad."""

from __future__ import annotations

from .base import FLOATS, INTS, OpCtx, op


def _block(c: OpCtx) -> int:
    return int(c.a("block_size", 0))


@op("QuantizeLinear")
def quantize(c: OpCtx) -> str:
    t = c.types(0, FLOATS)
    q = c.ot(0)
    c.need(q in INTS, f"quantized dtype {q}")
    zp = c.x(2) if c.has(2) else None
    if zp is not None:
        c.need(c.t(2) == q, "zero point dtype differs from the output")
    zp_expr = f"Some({zp})" if zp else "None"
    return (f"rt::quantize_linear::<{t}, {q}>({c.x(0)}, {c.x(1)}, {zp_expr}, {int(c.a('axis', 1))}, "
            f"{_block(c)})")


@op("DequantizeLinear")
def dequantize(c: OpCtx) -> str:
    q = c.types(0, INTS)
    t = c.ot(0)
    c.need(t in FLOATS, f"output dtype {t}")
    zp_expr = f"Some({c.x(2)})" if c.has(2) else "None"
    return (f"rt::dequantize_linear::<{q}, {t}>({c.x(0)}, {c.x(1)}, {zp_expr}, {int(c.a('axis', 1))}, "
            f"{_block(c)})")


@op("HannWindow", "HammingWindow", "BlackmanWindow")
def window(c: OpCtx) -> str:
    t = c.ot(0)
    c.need(t in FLOATS, f"output dtype {t}")
    kind = {"HannWindow": "hann", "HammingWindow": "hamming", "BlackmanWindow": "blackman"}[c.op.op_type]
    size = f"({c.scalar_expr(0)}).to_i64()"
    periodic = "true" if c.a("periodic", 1) else "false"
    return f"rt::window::<{t}>(\"{kind}\", {size}, {periodic})"


@op("EyeLike")
def eye_like(c: OpCtx) -> str:
    return f"rt::eye_like::<{c.t(0)}, {c.ot(0)}>({c.x(0)}, {int(c.a('k', 0))})"


@op("Compress")
def compress(c: OpCtx) -> str:
    c.t(0)
    c.types(1, {"bool"})
    ax = c.a("axis")
    return f"rt::compress({c.x(0)}, {c.x(1)}, {'None' if ax is None else f'Some({int(ax)})'})"


@op("CenterCropPad")
def center_crop_pad(c: OpCtx) -> str:
    c.t(0)
    axes = c.a("axes")
    axes_expr = "None" if axes is None else "Some(&[" + ", ".join(str(int(a)) for a in axes) + "][..])"
    return f"rt::center_crop_pad({c.x(0)}, {c.ints_expr(1)}, {axes_expr})"


@op("DynamicQuantizeLinear")
def dynamic_quantize(c: OpCtx) -> str:
    c.types(0, FLOATS)
    c.multi, c.n_results = "tuple", 3
    return f"rt::dynamic_quantize_linear({c.x(0)})"
