"""Shape and data-movement ops: Reshape, Transpose, Concat, Split, Slice, Gather, Pad..."""

from __future__ import annotations

import numpy as np

from .base import INTS, NUMS, OpCtx, lit, op, slice_lit
from .elementwise import arg


def _bool(v) -> str:
    return "true" if v else "false"


def _opt_attr_ints(c: OpCtx, name: str) -> str:
    values = c.a(name)
    return "None" if values is None else f"Some(&{slice_lit(values)[1:]}[..])"


@op("Reshape")
def reshape(c: OpCtx) -> str:
    c.t(0)
    shape = c.ints_expr(1) if c.opset >= 5 else slice_lit(c.attr_list("shape"))
    return f"rt::reshape({arg(c, 0)}, {shape}, {_bool(c.a('allowzero', 0))})"


@op("Transpose")
def transpose(c: OpCtx) -> str:
    c.t(0)
    return f"rt::transpose({c.x(0)}, {slice_lit(c.attr_list('perm'))})"


@op("Flatten")
def flatten(c: OpCtx) -> str:
    c.t(0)
    return f"rt::flatten({arg(c, 0)}, {int(c.a('axis', 1))})"


@op("Squeeze")
def squeeze(c: OpCtx) -> str:
    c.t(0)
    axes = c.opt_ints_expr(1) if c.opset >= 13 else _opt_attr_ints(c, "axes")
    return f"rt::squeeze({arg(c, 0)}, {axes})"


@op("Unsqueeze")
def unsqueeze(c: OpCtx) -> str:
    c.t(0)
    axes = c.ints_expr(1) if c.opset >= 13 else slice_lit(c.attr_list("axes"))
    return f"rt::unsqueeze({arg(c, 0)}, {axes})"


@op("Concat")
def concat(c: OpCtx) -> str:
    c.t(0)
    args = ", ".join(c.x(i) for i in range(len(c.ins)) if c.has(i))
    return f"rt::concat(&[{args}], {int(c.a('axis', 0))})"


@op("Split")
def split(c: OpCtx) -> str:
    c.t(0)
    c.multi = "vec"
    sizes = c.opt_ints_expr(1) if c.opset >= 13 else _opt_attr_ints(c, "split")
    count = len(c.outs)
    return f"rt::split({c.x(0)}, {int(c.a('axis', 0))}, {sizes}, {count})"


@op("Slice")
def slice_(c: OpCtx) -> str:
    c.t(0)
    if c.opset < 10:
        starts, ends = slice_lit(c.attr_list("starts")), slice_lit(c.attr_list("ends"))
        return f"rt::slice({c.x(0)}, {starts}, {ends}, {_opt_attr_ints(c, 'axes')}, None)"
    return (f"rt::slice({c.x(0)}, {c.ints_expr(1)}, {c.ints_expr(2)}, {c.opt_ints_expr(3)}, "
            f"{c.opt_ints_expr(4)})")


@op("Gather")
def gather(c: OpCtx) -> str:
    c.t(0)
    c.types(1, INTS)
    return f"rt::gather({c.x(0)}, {c.x(1)}, {int(c.a('axis', 0))})"


@op("GatherElements")
def gather_elements(c: OpCtx) -> str:
    c.t(0)
    c.types(1, INTS)
    return f"rt::gather_elements({c.x(0)}, {c.x(1)}, {int(c.a('axis', 0))})"


@op("GatherND")
def gather_nd(c: OpCtx) -> str:
    c.t(0)
    c.types(1, INTS)
    return f"rt::gather_nd({c.x(0)}, {c.x(1)}, {int(c.a('batch_dims', 0))})"


REDUCTIONS = {"none", "add", "mul", "max", "min"}


@op("ScatterND")
def scatter_nd(c: OpCtx) -> str:
    c.types(0, NUMS)
    red = c.s("reduction", "none", REDUCTIONS)
    return f"rt::scatter_nd({c.x(0)}, {c.x(1)}, {c.x(2)}, {c.string(red)})"


@op("ScatterElements", "Scatter")
def scatter_elements(c: OpCtx) -> str:
    c.types(0, NUMS)
    red = c.s("reduction", "none", REDUCTIONS)
    return (f"rt::scatter_elements({c.x(0)}, {c.x(1)}, {c.x(2)}, {int(c.a('axis', 0))}, "
            f"{c.string(red)})")


@op("Expand")
def expand(c: OpCtx) -> str:
    c.t(0)
    return f"rt::expand({c.x(0)}, {c.ints_expr(1)})"


@op("Tile")
def tile(c: OpCtx) -> str:
    c.t(0)
    return f"rt::tile({c.x(0)}, {c.ints_expr(1)})"


@op("Pad")
def pad(c: OpCtx) -> str:
    t = c.t(0)
    mode = c.s("mode", "constant", {"constant", "reflect", "edge", "wrap"})
    if c.opset < 11:
        pads = slice_lit(c.attr_list("pads"))
        value = lit(c.a("value", 0.0), t)
        axes = "None"
    else:
        pads = c.ints_expr(1)
        value = c.scalar_expr(2, t) if c.has(2) else lit(0, t)
        axes = c.opt_ints_expr(3)
    return f"rt::pad({c.x(0)}, {pads}, {value}, {c.string(mode)}, {axes})"


@op("Shape")
def shape(c: OpCtx) -> str:
    c.t(0)
    end = c.a("end")
    end = "None" if end is None else f"Some({int(end)})"
    return f"rt::shape({c.x(0)}, {int(c.a('start', 0))}, {end})"


@op("Size")
def size(c: OpCtx) -> str:
    c.t(0)
    return f"rt::size({c.x(0)})"


@op("ConstantOfShape")
def constant_of_shape(c: OpCtx) -> str:
    value = c.a("value")
    array = value.numpy() if value is not None else np.zeros(1, np.float32)
    t = c.ot(0)
    return f"rt::constant_of_shape({c.ints_expr(0)}, {lit(np.asarray(array).reshape(-1)[0], t)})"


@op("Range")
def range_(c: OpCtx) -> str:
    t = c.types(0, NUMS)
    return f"rt::range({c.scalar_expr(0, t)}, {c.scalar_expr(1, t)}, {c.scalar_expr(2, t)})"


@op("NonZero")
def nonzero(c: OpCtx) -> str:
    c.t(0)
    return f"rt::nonzero({c.x(0)})"


@op("DepthToSpace")
def depth_to_space(c: OpCtx) -> str:
    c.t(0)
    crd = c.s("mode", "DCR", {"DCR", "CRD"}) == "CRD"
    return f"rt::depth_to_space({c.x(0)}, {int(c.a('blocksize'))}, {_bool(crd)})"


@op("SpaceToDepth")
def space_to_depth(c: OpCtx) -> str:
    c.t(0)
    return f"rt::space_to_depth({c.x(0)}, {int(c.a('blocksize'))})"


@op("OneHot")
def one_hot(c: OpCtx) -> str:
    c.types(0, NUMS)
    depth = c.scalar_expr(1, c.t(1))
    return f"rt::one_hot({c.x(0)}, ({depth}).to_i64(), {c.x(2)}, {int(c.a('axis', -1))})"


@op("Trilu")
def trilu(c: OpCtx) -> str:
    c.t(0)
    k = c.scalar_expr(1, "i64") if c.has(1) else "0"
    return f"rt::trilu({c.x(0)}, {k}, {_bool(c.a('upper', 1))})"


@op("TensorScatter")
def tensor_scatter(c: OpCtx) -> str:
    c.t(0)
    idx = "None"
    if c.has(2):
        c.need(c.t(2) == "i64", "write_indices dtype")
        idx = f"Some({c.x(2)})"
    circular = c.s("mode", "linear", {"linear", "circular"}) == "circular"
    return (f"rt::tensor_scatter({c.x(0)}, {c.x(1)}, {idx}, {int(c.a('axis', -2))}, "
            f"{_bool(circular)})")
