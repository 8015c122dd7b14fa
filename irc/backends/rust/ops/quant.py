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


def _zp(c: OpCtx, i: int) -> str:
    return f"Some({c.x(i)})" if c.has(i) else "None"


@op("MatMulInteger")
def matmul_integer(c: OpCtx) -> str:
    c.types(0, INTS)
    c.types(1, INTS)
    return f"rt::int_matmul({c.x(0)}, {c.x(1)}, {_zp(c, 2)}, {_zp(c, 3)})"


@op("ConvInteger")
def conv_integer(c: OpCtx) -> str:
    from .conv import window

    c.types(0, INTS)
    c.types(1, INTS)
    return (f"rt::int_conv({c.x(0)}, {c.x(1)}, {_zp(c, 2)}, {_zp(c, 3)}, None, {window(c)}, "
            f"{int(c.a('group', 1))})")


@op("QLinearMatMul")
def qlinear_matmul(c: OpCtx) -> str:
    c.types(0, INTS)
    t = c.types(1, FLOATS)
    q = c.ot(0)
    acc = f"&rt::int_matmul({c.x(0)}, {c.x(3)}, {_zp(c, 2)}, {_zp(c, 5)})?"
    return f"rt::requantize::<{t}, {q}>({acc}, {c.x(1)}, {c.x(4)}, {c.x(6)}, {_zp(c, 7)}, usize::MAX, false)"


@op("QLinearConv")
def qlinear_conv(c: OpCtx) -> str:
    from .conv import window

    c.types(0, INTS)
    t = c.types(1, FLOATS)
    q = c.ot(0)
    bias = f"Some({c.x(8)})" if c.has(8) else "None"
    acc = (f"&rt::int_conv({c.x(0)}, {c.x(3)}, {_zp(c, 2)}, {_zp(c, 5)}, {bias}, {window(c)}, "
           f"{int(c.a('group', 1))})?")
    return f"rt::requantize::<{t}, {q}>({acc}, {c.x(1)}, {c.x(4)}, {c.x(6)}, {_zp(c, 7)}, 1, true)"
