"""Pooling: MaxPool (with indices), AveragePool, LpPool and the Global forms."""

from __future__ import annotations

from .base import FLOATS, NUMS, OpCtx, float_lit, op
from .conv import window


def _ceil(c: OpCtx) -> str:
    return "true" if c.a("ceil_mode", 0) else "false"


@op("MaxPool")
def max_pool(c: OpCtx) -> str:
    c.types(0, NUMS)
    win = window(c, c.attr_list("kernel_shape"))
    if len(c.outs) > 1 and c.outs[1] is not None:
        c.multi = "tuple"
        call = f"rt::max_pool_with_indices({c.x(0)}, {win}, {_ceil(c)})"
        if int(c.a("storage_order", 0)) == 1:
            return (f"{call}.map(|(v, i)| {{ let i = rt::to_column_major_indices(&i, {c.x(0)}.shape()); "
                    f"(v, i) }})")
        return call
    return f"rt::max_pool({c.x(0)}, {win}, {_ceil(c)})"


@op("AveragePool")
def average_pool(c: OpCtx) -> str:
    c.types(0, FLOATS)
    win = window(c, c.attr_list("kernel_shape"))
    pad = "true" if c.a("count_include_pad", 0) else "false"
    return f"rt::average_pool({c.x(0)}, {win}, {_ceil(c)}, {pad})"


@op("LpPool")
def lp_pool(c: OpCtx) -> str:
    c.types(0, FLOATS)
    win = window(c, c.attr_list("kernel_shape"))
    return f"rt::lp_pool({c.x(0)}, {win}, {_ceil(c)}, {int(c.a('p', 2))})"


@op("GlobalAveragePool", "GlobalMaxPool")
def global_pool(c: OpCtx) -> str:
    c.types(0, FLOATS)
    fn = "global_average_pool" if c.op.op_type == "GlobalAveragePool" else "global_max_pool"
    return f"rt::{fn}({c.x(0)})"


@op("GlobalLpPool")
def global_lp_pool(c: OpCtx) -> str:
    c.types(0, FLOATS)
    return f"rt::global_lp_pool({c.x(0)}, {int(c.a('p', 2))})"


@op("NonMaxSuppression")
def non_max_suppression(c: OpCtx) -> str:
    c.types(0, FLOATS)
    max_out = f"({c.scalar_expr(2)}).to_i64()" if c.has(2) else "0"
    iou = f"({c.scalar_expr(3)}).to_f64()" if c.has(3) else "0.0"
    score = f"Some(({c.scalar_expr(4)}).to_f64())" if c.has(4) else "None"
    center = "true" if c.a("center_point_box", 0) else "false"
    return f"rt::non_max_suppression({c.x(0)}, {c.x(1)}, {max_out}, {iou}, {score}, {center})"


@op("MaxUnpool")
def max_unpool(c: OpCtx) -> str:
    c.types(0, NUMS)
    win = window(c, c.attr_list("kernel_shape"))
    shape = c.opt_ints_expr(2)
    return f"rt::max_unpool({c.x(0)}, {c.x(1)}, {win}, {shape})"


@op("RoiAlign")
def roi_align(c: OpCtx) -> str:
    c.types(0, FLOATS)
    c.need(c.t(2) == "i64", "batch_indices dtype")
    mode = c.s("mode", "avg", {"avg", "max"})
    default_coord = "half_pixel" if c.opset >= 16 else "output_half_pixel"
    coord = c.s("coordinate_transformation_mode", default_coord, {"half_pixel", "output_half_pixel"})
    fields = [f"mode: {c.string(mode)}", f"output_height: {int(c.a('output_height', 1))}",
              f"output_width: {int(c.a('output_width', 1))}", f"sampling_ratio: {int(c.a('sampling_ratio', 0))}",
              f"spatial_scale: {float_lit(c.a('spatial_scale', 1.0))}",
              f"half_pixel: {'true' if coord == 'half_pixel' else 'false'}"]
    return f"rt::roi_align({c.x(0)}, {c.x(1)}, {c.x(2)}, &rt::RoiAlignParams {{ {', '.join(fields)} }})"
