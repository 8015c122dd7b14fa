"""Reductions, arg-reductions, softmax family, CumSum, TopK."""

from __future__ import annotations

from .base import FLOATS, NUMS, OpCtx, op, slice_lit
from .elementwise import arg

REDUCE = {
    "ReduceMax": "max", "ReduceMin": "min", "ReduceSum": "sum", "ReduceMean": "mean",
    "ReduceProd": "prod", "ReduceL1": "l1", "ReduceL2": "l2", "ReduceSumSquare": "sum_square",
    "ReduceLogSum": "log_sum", "ReduceLogSumExp": "log_sum_exp",
}
# Opset from which `axes` is an input rather than an attribute.
AXES_INPUT_SINCE = {"ReduceSum": 13}


def _bool(v) -> str:
    return "true" if v else "false"


@op(*REDUCE)
def reduce(c: OpCtx) -> str:
    c.types(0, NUMS | ({"bool"} if c.op.op_type in ("ReduceMax", "ReduceMin") else set()))
    since = AXES_INPUT_SINCE.get(c.op.op_type, 18)
    if c.opset >= since:
        axes = c.opt_ints_expr(1)
    else:
        listed = c.attr_list("axes")
        axes = f"Some(&{slice_lit(listed)[1:]}[..])" if listed else "None"
    keep = _bool(c.a("keepdims", 1))
    noop = _bool(c.a("noop_with_empty_axes", 0))
    if c.t(0) == "bool":
        any_ = "true" if c.op.op_type == "ReduceMax" else "false"
        return f"rt::reduce_bool({c.x(0)}, {any_}, {axes}, {keep}, {noop})"
    return f"rt::reduce({c.x(0)}, \"{REDUCE[c.op.op_type]}\", {axes}, {keep}, {noop})"


@op("ArgMax", "ArgMin")
def arg_reduce(c: OpCtx) -> str:
    c.types(0, NUMS)
    is_max = _bool(c.op.op_type == "ArgMax")
    return (f"rt::arg_reduce({c.x(0)}, {int(c.a('axis', 0))}, {_bool(c.a('keepdims', 1))}, "
            f"{_bool(c.a('select_last_index', 0))}, {is_max})")


@op("Softmax", "LogSoftmax", "Hardmax")
def softmax(c: OpCtx) -> str:
    c.types(0, FLOATS)
    legacy = c.opset < 13
    axis = int(c.a("axis", 1 if legacy else -1))
    fn = {"Softmax": "softmax", "LogSoftmax": "log_softmax", "Hardmax": "hardmax"}[c.op.op_type]
    x = c.x(0) if fn == "hardmax" else arg(c, 0)
    return f"rt::{fn}({x}, {axis}, {_bool(legacy)})"


@op("CumSum")
def cumsum(c: OpCtx) -> str:
    c.types(0, NUMS)
    axis = c.ints(1)
    axis_expr = str(axis[0]) if axis is not None else f"({c.scalar_expr(1)}).to_i64()"
    return (f"rt::cumsum({c.x(0)}, {axis_expr}, {_bool(c.a('exclusive', 0))}, "
            f"{_bool(c.a('reverse', 0))})")


@op("TopK")
def topk(c: OpCtx) -> str:
    c.types(0, NUMS)
    if c.opset < 10:
        k = str(int(c.a("k")))
    else:
        k = c.scalar_expr(1, "i64")
    c.multi = "tuple"
    return (f"rt::topk({c.x(0)}, {k}, {int(c.a('axis', -1))}, {_bool(c.a('largest', 1))}, "
            f"{_bool(c.a('sorted', 1))})")


@op("Unique")
def unique(c: OpCtx) -> str:
    c.types(0, NUMS)
    ax = c.a("axis")
    c.multi, c.n_results = "tuple", 4
    ax_expr = "None" if ax is None else f"Some({int(ax)})"
    return f"rt::unique({c.x(0)}, {ax_expr}, {_bool(c.a('sorted', 1))})"
