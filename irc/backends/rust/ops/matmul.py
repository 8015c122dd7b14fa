"""MatMul, Gemm and Einsum: everything that ends in a GEMM call."""

from __future__ import annotations

import re

import numpy as np

from .base import FLOATS, NUMS, OpCtx, float_lit, lit, op


def packed_weights(c: OpCtx, i: int, transposed: bool) -> str | None:
    """`&self.<field>` of constant 2-D f32 input ``i`` packed once at load (`rt::PackedMat`), else None."""
    w = c.const(i)
    if w is None or w.ndim != 2 or w.dtype != np.float32 or c.t(0) != "f32":
        return None
    kind = "packed_t" if transposed else "packed"
    return c.b.prepared(c.ins[i], kind, "rt::PackedMat", f"rt::PackedMat::new({{}}, {str(transposed).lower()})?")


@op("MatMul")
def matmul(c: OpCtx) -> str:
    c.types(0, NUMS)
    c.need(c.t(0) == c.t(1), "operands of different dtypes")
    packed = packed_weights(c, 1, False)
    if packed is not None:
        return f"rt::matmul_packed({c.x(0)}, {packed}, rt::Act::None)"
    return f"rt::matmul({c.x(0)}, {c.x(1)})"


def gemm_packed(c: OpCtx, act: str) -> str | None:
    """A Gemm with constant f32 B as `rt::gemm_packed` (B packed once at load), else None."""
    packed = packed_weights(c, 1, bool(c.a("transB", 0)))
    if packed is None or (c.has(2) and c.t(2) != "f32"):
        return None
    bias = f"Some({c.x(2)})" if c.has(2) else "None"
    ta = "true" if c.a("transA", 0) else "false"
    alpha, beta = float_lit(c.a("alpha", 1.0)), float_lit(c.a("beta", 1.0))
    return f"rt::gemm_packed({c.x(0)}, {packed}, {bias}, {alpha}, {beta}, {ta}, {act})"


@op("Gemm")
def gemm(c: OpCtx) -> str:
    c.types(0, NUMS)
    packed = gemm_packed(c, "rt::Act::None")
    if packed is not None:
        return packed
    bias = f"Some({c.x(2)})" if c.has(2) else "None"
    ta = "true" if c.a("transA", 0) else "false"
    tb = "true" if c.a("transB", 0) else "false"
    alpha, beta = float_lit(c.a("alpha", 1.0)), float_lit(c.a("beta", 1.0))
    return f"rt::gemm({c.x(0)}, {c.x(1)}, {bias}, {alpha}, {beta}, {ta}, {tb})"


# The activations `irc optimize --level 3` fuses into Conv, Gemm and MatMul (docs/IRC_DOMAIN.md).
ACTIVATIONS = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "Clip")


def f32_lit(v: float) -> str:
    """An f32 literal (±f32::MAX stays finite: Clip's open bounds are written that way)."""
    return lit(v, "f32").removesuffix("_f32")


def act_expr(c: OpCtx, act: str) -> str:
    """The `rt::Act` value of an `irc.<Base><Act>` op, its parameters from act_alpha/act_beta."""
    alpha, beta = f32_lit(c.a("act_alpha", 0.0)), f32_lit(c.a("act_beta", 0.0))
    params = {"LeakyRelu": f"({alpha})", "HardSigmoid": f"({alpha}, {beta})", "Clip": f"({alpha}, {beta})"}
    return f"rt::Act::{act}{params.get(act, '')}"


def fused_f32(c: OpCtx) -> None:
    """The irc-domain fusions are defined for float32 only."""
    for i in range(len(c.ins)):
        if c.has(i):
            c.types(i, {"f32"})


def _gemm_act(act: str):
    def handler(c: OpCtx) -> str:
        fused_f32(c)
        packed = gemm_packed(c, act_expr(c, act))
        if packed is not None:
            return packed
        ta = "true" if c.a("transA", 0) else "false"
        tb = "true" if c.a("transB", 0) else "false"
        alpha, beta = float_lit(c.a("alpha", 1.0)), float_lit(c.a("beta", 1.0))
        return f"rt::gemm_act({c.x(0)}, {c.x(1)}, {c.x(2)}, {alpha}, {beta}, {ta}, {tb}, {act_expr(c, act)})"
    return handler


def _matmul_act(act: str):
    def handler(c: OpCtx) -> str:
        fused_f32(c)
        packed = packed_weights(c, 1, False)
        if packed is not None:
            return f"rt::matmul_packed({c.x(0)}, {packed}, {act_expr(c, act)})"
        return f"rt::matmul_act({c.x(0)}, {c.x(1)}, {act_expr(c, act)})"
    return handler


for _act in ACTIVATIONS:
    op(f"irc.Gemm{_act}")(_gemm_act(_act))
    op(f"irc.MatMul{_act}")(_matmul_act(_act))


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
