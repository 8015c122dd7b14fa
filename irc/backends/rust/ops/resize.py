"""Resize (nearest, linear, cubic) for opsets 10 to the newest."""

from __future__ import annotations

from .base import FLOATS, OpCtx, float_lit, op, slice_lit

COORDS = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric",
          "tf_crop_and_resize"}
NEAREST = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}


def _floats_expr(c: OpCtx, i: int) -> str:
    """`Option<&[f64]>` for an optional float input: a literal when constant."""
    if not c.has(i):
        return "None"
    const = c.const(i)
    if const is not None:
        return "Some(&[" + ", ".join(float_lit(v) for v in const.reshape(-1)) + "][..])"
    return f"Some(&rt::to_f64_vec({c.x(i)})[..])"


@op("Resize")
def resize(c: OpCtx) -> str:
    c.types(0, FLOATS)
    mode = c.s("mode", "nearest", {"nearest", "linear", "cubic"})
    c.need(not c.a("antialias", 0), "antialias=1")
    policy = c.s("keep_aspect_ratio_policy", "stretch", {"stretch", "not_larger", "not_smaller"})
    if c.opset < 11:
        coord, nearest = "asymmetric", "floor"
        roi, scales, sizes = "None", _floats_expr(c, 1), "None"
    else:
        coord = c.s("coordinate_transformation_mode", "half_pixel", COORDS)
        nearest = c.s("nearest_mode", "round_prefer_floor", NEAREST)
        roi, scales, sizes = _floats_expr(c, 1), _floats_expr(c, 2), c.opt_ints_expr(3)
    axes = c.a("axes")
    axes_expr = "None" if axes is None else f"Some(&{slice_lit(axes)[1:]}[..])"
    fields = [f"mode: {c.string(mode)}", f"coord: {c.string(coord)}", f"nearest: {c.string(nearest)}",
              f"cubic_coeff_a: {float_lit(c.a('cubic_coeff_a', -0.75))}",
              f"exclude_outside: {'true' if c.a('exclude_outside', 0) else 'false'}",
              f"extrapolation_value: {float_lit(c.a('extrapolation_value', 0.0))}",
              f"policy: {c.string(policy)}"]
    m = "&rt::ResizeMode { " + ", ".join(fields) + " }"
    return f"rt::resize({c.x(0)}, {roi}, {scales}, {sizes}, {axes_expr}, {m})"


@op("Upsample")
def upsample(c: OpCtx) -> str:
    c.types(0, FLOATS)
    mode = c.s("mode", "nearest", {"nearest", "linear"})
    scales = _floats_expr(c, 1) if c.opset >= 9 else "Some(&[" + ", ".join(
        float_lit(v) for v in c.attr_list("scales")) + "][..])"
    fields = [f"mode: {c.string(mode)}", "coord: \"asymmetric\"", "nearest: \"floor\"", "cubic_coeff_a: -0.75",
              "exclude_outside: false", "extrapolation_value: 0.0", "policy: \"stretch\""]
    return f"rt::resize({c.x(0)}, None, {scales}, None, None, &rt::ResizeMode {{ {', '.join(fields)} }})"


@op("GridSample")
def grid_sample(c: OpCtx) -> str:
    c.types(0, FLOATS)
    c.need(c.t(1) == c.t(0), "grid dtype differs from the input")
    mode = c.s("mode", "linear" if c.opset >= 20 else "bilinear", {"linear", "bilinear", "nearest", "cubic", "bicubic"})
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    padding = c.s("padding_mode", "zeros", {"zeros", "border", "reflection"})
    align = "true" if c.a("align_corners", 0) else "false"
    return f"rt::grid_sample({c.x(0)}, {c.x(1)}, {c.string(mode)}, {c.string(padding)}, {align})"
