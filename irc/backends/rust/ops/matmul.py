"""MatMul, Gemm and Einsum: everything that ends in a GEMM call."""

from __future__ import annotations

import re

from .base import FLOATS, NUMS, OpCtx, float_lit, op


@op("MatMul")
def matmul(c: OpCtx) -> str:
    c.types(0, NUMS)
    c.need(c.t(0) == c.t(1), "operands of different dtypes")
    return f"rt::matmul({c.x(0)}, {c.x(1)})"


@op("Gemm")
def gemm(c: OpCtx) -> str:
    c.types(0, NUMS)
    bias = f"Some({c.x(2)})" if c.has(2) else "None"
    ta = "true" if c.a("transA", 0) else "false"
    tb = "true" if c.a("transB", 0) else "false"
    alpha, beta = float_lit(c.a("alpha", 1.0)), float_lit(c.a("beta", 1.0))
    return f"rt::gemm({c.x(0)}, {c.x(1)}, {bias}, {alpha}, {beta}, {ta}, {tb})"


@op("Einsum")
def einsum(c: OpCtx) -> str:
    c.types(0, NUMS | FLOATS)
    eq = c.s("equation", "")
    c.need(re.fullmatch(r"[A-Za-z,.\s]*(->[A-Za-z.\s]*)?", eq) is not None, f"einsum equation {eq!r}")
    args = ", ".join(c.x(i) for i in range(len(c.ins)))
    return f"rt::einsum({c.string(eq)}, &[{args}])"


@op("Det")
def det(c: OpCtx) -> str:
    c.types(0, FLOATS)
    return f"rt::det({c.x(0)})"


@op("AffineGrid")
def affine_grid(c: OpCtx) -> str:
    c.types(0, FLOATS)
    align = "true" if c.a("align_corners", 0) else "false"
    return f"rt::affine_grid({c.x(0)}, {c.ints_expr(1)}, {align})"


@op("DFT")
def dft(c: OpCtx) -> str:
    c.types(0, FLOATS)
    length = f"Some(({c.scalar_expr(1)}).to_i64())" if c.has(1) else "None"
    if c.opset >= 20:
        axis = f"({c.scalar_expr(2)}).to_i64()" if c.has(2) else "-2"
    else:
        axis = str(int(c.a("axis", 1)))
    inverse = "true" if c.a("inverse", 0) else "false"
    onesided = "true" if c.a("onesided", 0) else "false"
    return f"rt::dft({c.x(0)}, {length}, {axis}, {inverse}, {onesided})"
