"""Elementwise ops: unary math and activations, binary arithmetic with broadcasting, logic, Cast, Clip, Where."""

from __future__ import annotations

from .base import FLOATS, INTS, NUMS, OpCtx, Unsupported, float_lit, lit, op

FLOAT_UNARY = {
    "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Tanh": "tanh", "Sin": "sin", "Cos": "cos",
    "Tan": "tan", "Asin": "asin", "Acos": "acos", "Atan": "atan", "Sinh": "sinh", "Cosh": "cosh",
    "Asinh": "asinh", "Acosh": "acosh", "Atanh": "atanh", "Floor": "floor", "Ceil": "ceil",
    "Round": "round", "Erf": "erf", "Sigmoid": "sigmoid", "Softplus": "softplus",
    "Softsign": "softsign", "Reciprocal": "reciprocal", "Mish": "mish", "HardSwish": "hard_swish",
}
NUM_UNARY = {"Neg": "neg", "Abs": "abs", "Sign": "sign", "Relu": "relu"}
BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}
COMPARE = {"Equal": "equal", "Less": "less", "Greater": "greater",
           "LessOrEqual": "less_or_equal", "GreaterOrEqual": "greater_or_equal"}
LOGIC = {"And": "and", "Or": "or", "Xor": "xor"}


@op(*FLOAT_UNARY)
def float_unary(c: OpCtx) -> str:
    c.types(0, FLOATS)
    return f"rt::{FLOAT_UNARY[c.op.op_type]}({c.x(0)})"


@op(*NUM_UNARY)
def num_unary(c: OpCtx) -> str:
    c.types(0, NUMS)
    return f"rt::{NUM_UNARY[c.op.op_type]}({c.x(0)})"


@op(*BINARY)
def binary(c: OpCtx) -> str:
    c.types(0, NUMS)
    c.need(c.t(0) == c.t(1), "operands of different dtypes")
    return f"rt::{BINARY[c.op.op_type]}({c.x(0)}, {c.x(1)})"


@op("Mod")
def mod(c: OpCtx) -> str:
    c.types(0, NUMS)
    fmod = bool(c.a("fmod", 0))
    c.need(fmod or c.t(0) in INTS, "Mod with fmod=0 on floats")
    return f"rt::modulo({c.x(0)}, {c.x(1)}, {'true' if fmod else 'false'})"


@op("Pow")
def pow_(c: OpCtx) -> str:
    c.types(0, NUMS)
    c.types(1, NUMS)
    return f"rt::pow({c.x(0)}, {c.x(1)})"


@op(*COMPARE)
def compare(c: OpCtx) -> str:
    c.types(0, NUMS | {"bool"})
    c.need(c.t(0) == c.t(1), "operands of different dtypes")
    return f"rt::{COMPARE[c.op.op_type]}({c.x(0)}, {c.x(1)})"


@op(*LOGIC)
def logic(c: OpCtx) -> str:
    c.types(0, {"bool"})
    return f"rt::{LOGIC[c.op.op_type]}({c.x(0)}, {c.x(1)})"


@op("Not")
def not_(c: OpCtx) -> str:
    c.types(0, {"bool"})
    return f"rt::not({c.x(0)})"


@op("BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitShift")
def bitwise(c: OpCtx) -> str:
    c.types(0, INTS)
    kind = {"BitwiseAnd": "and", "BitwiseOr": "or", "BitwiseXor": "xor"}.get(c.op.op_type)
    if kind is None:
        kind = "left" if c.s("direction", "LEFT", {"LEFT", "RIGHT"}) == "LEFT" else "right"
    return f"rt::bitwise({c.x(0)}, {c.x(1)}, \"{kind}\")"


@op("BitwiseNot")
def bitwise_not(c: OpCtx) -> str:
    c.types(0, INTS)
    return f"rt::bitwise_not({c.x(0)})"


@op("Max", "Min", "Sum", "Mean")
def variadic(c: OpCtx) -> str:
    c.types(0, FLOATS if c.op.op_type == "Mean" else NUMS)
    args = ", ".join(c.x(i) for i in range(len(c.ins)) if c.has(i))
    return f"rt::{c.op.op_type.lower()}(&[{args}])"


@op("Identity", "Dropout")
def identity(c: OpCtx) -> str:
    if c.op.op_type == "Dropout":
        c.need(len(c.outs) < 2 or c.outs[1] is None or not c.b.graph.uses(c.outs[1]), "Dropout mask output")
        c.need(not c.has(2) or c.ints(2) in ([0], None) and c.const(2) is not None, "Dropout in training mode")
    c.t(0)
    return f"rt::identity({c.x(0)})"


@op("LeakyRelu", "Elu", "Celu", "ThresholdedRelu")
def alpha_act(c: OpCtx) -> str:
    c.types(0, FLOATS)
    default = {"LeakyRelu": 0.01, "Elu": 1.0, "Celu": 1.0, "ThresholdedRelu": 1.0}[c.op.op_type]
    fn = {"LeakyRelu": "leaky_relu", "Elu": "elu", "Celu": "celu", "ThresholdedRelu": "thresholded_relu"}
    return f"rt::{fn[c.op.op_type]}({c.x(0)}, {float_lit(c.a('alpha', default))})"


@op("Selu")
def selu(c: OpCtx) -> str:
    c.types(0, FLOATS)
    alpha = float_lit(c.a("alpha", 1.67326319217681884765625))
    gamma = float_lit(c.a("gamma", 1.05070102214813232421875))
    return f"rt::selu({c.x(0)}, {alpha}, {gamma})"


@op("HardSigmoid")
def hard_sigmoid(c: OpCtx) -> str:
    c.types(0, FLOATS)
    return f"rt::hard_sigmoid({c.x(0)}, {float_lit(c.a('alpha', 0.2))}, {float_lit(c.a('beta', 0.5))})"


@op("Gelu")
def gelu(c: OpCtx) -> str:
    c.types(0, FLOATS)
    approx = c.s("approximate", "none", {"none", "tanh"})
    return f"rt::gelu({c.x(0)}, {'true' if approx == 'tanh' else 'false'})"


@op("Shrink")
def shrink(c: OpCtx) -> str:
    c.types(0, NUMS)
    return f"rt::shrink({c.x(0)}, {float_lit(c.a('bias', 0.0))}, {float_lit(c.a('lambd', 0.5))})"


@op("PRelu")
def prelu(c: OpCtx) -> str:
    c.types(0, NUMS)
    return f"rt::prelu({c.x(0)}, {c.x(1)})"


@op("IsNaN")
def is_nan(c: OpCtx) -> str:
    c.types(0, FLOATS)
    return f"rt::is_nan({c.x(0)})"


@op("IsInf")
def is_inf(c: OpCtx) -> str:
    c.types(0, FLOATS)
    pos = "true" if c.a("detect_positive", 1) else "false"
    neg = "true" if c.a("detect_negative", 1) else "false"
    return f"rt::is_inf({c.x(0)}, {pos}, {neg})"


@op("Where")
def where(c: OpCtx) -> str:
    c.types(0, {"bool"})
    c.need(c.t(1) == c.t(2), "branches of different dtypes")
    return f"rt::where_({c.x(0)}, {c.x(1)}, {c.x(2)})"


@op("Cast", "CastLike")
def cast(c: OpCtx) -> str:
    src, dst = c.t(0), c.ot(0)
    if c.a("saturate", 1) != 1 and dst not in FLOATS | INTS | {"bool"}:
        raise Unsupported("saturate=0")
    return f"rt::cast::<{src}, {dst}>({c.x(0)})"


@op("Clip")
def clip(c: OpCtx) -> str:
    t = c.types(0, NUMS)
    if c.opset < 11:
        lo, hi = c.a("min"), c.a("max")
        lo = f"Some({lit(lo, t)})" if lo is not None else "None"
        hi = f"Some({lit(hi, t)})" if hi is not None else "None"
    else:
        lo = f"Some({c.scalar_expr(1, t)})" if c.has(1) else "None"
        hi = f"Some({c.scalar_expr(2, t)})" if c.has(2) else "None"
    return f"rt::clip({c.x(0)}, {lo}, {hi})"


@op("Swish")
def swish(c: OpCtx) -> str:
    c.types(0, FLOATS)
    return f"rt::swish({c.x(0)}, {float_lit(c.a('alpha', 1.0))})"
