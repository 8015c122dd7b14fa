"""Conv and ConvTranspose (1-D/2-D/3-D, groups, dilations, pads, auto_pad)."""

from __future__ import annotations

from .base import NUMS, OpCtx, op, slice_lit
from .matmul import ACTIVATIONS, act_expr, fused_f32

AUTO_PAD = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"}


def window(c: OpCtx, kernel: list[int] | None = None) -> str:
    """A `&rt::Window { ... }` literal from the op's attributes."""
    auto_pad = c.s("auto_pad", "NOTSET", AUTO_PAD)
    parts = [
        f"kernel: {slice_lit(kernel or [])}",
        f"strides: {slice_lit(c.attr_list('strides'))}",
        f"dilations: {slice_lit(c.attr_list('dilations'))}",
        f"pads: {slice_lit(c.attr_list('pads'))}",
        f"auto_pad: {c.string(auto_pad)}",
    ]
    return "&rt::Window { " + ", ".join(parts) + " }"


@op("Conv")
def conv(c: OpCtx) -> str:
    c.types(0, NUMS)
    bias = f"Some({c.x(2)})" if c.has(2) else "None"
    if c.t(0) == "f32" and c.t(1) == "f32" and (not c.has(2) or c.t(2) == "f32"):
        # The f32 kernels (bias in the GEMM epilogue, SIMD depthwise) with no activation.
        return f"rt::conv_act({c.x(0)}, {c.x(1)}, {bias}, {window(c)}, {int(c.a('group', 1))}, rt::Act::None)"
    return f"rt::conv({c.x(0)}, {c.x(1)}, {bias}, {window(c)}, {int(c.a('group', 1))})"


def _conv_act(act: str):
    def handler(c: OpCtx) -> str:
        fused_f32(c)
        return (f"rt::conv_act({c.x(0)}, {c.x(1)}, Some({c.x(2)}), {window(c)}, {int(c.a('group', 1))}, "
                f"{act_expr(c, act)})")
    return handler


for _act in ACTIVATIONS:
    op(f"irc.Conv{_act}")(_conv_act(_act))


@op("ConvTranspose")
def conv_transpose(c: OpCtx) -> str:
    c.types(0, NUMS)
    bias = f"Some({c.x(2)})" if c.has(2) else "None"
    opad = slice_lit(c.attr_list("output_padding"))
    oshape = slice_lit(c.attr_list("output_shape"))
    return (f"rt::conv_transpose({c.x(0)}, {c.x(1)}, {bias}, {window(c)}, {int(c.a('group', 1))}, "
            f"{opad}, {oshape})")


@op("Col2Im")
def col2im(c: OpCtx) -> str:
    c.types(0, NUMS)
    return (f"rt::col2im({c.x(0)}, {c.ints_expr(1)}, {c.ints_expr(2)}, {slice_lit(c.attr_list('strides'))}, "
            f"{slice_lit(c.attr_list('dilations'))}, {slice_lit(c.attr_list('pads'))})")
