"""Elementwise ops: unary math and activations, binary arithmetic with broadcasting, logic, Cast, Clip, Where.

Runtime functions that take an `Operand` get a dying input by value (`arg`), so the layer
writes its output into that buffer instead of allocating.
"""

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
# Runtime functions whose input is an `Operand` (borrowed or moved).
TAKES_OPERAND = {"exp", "log", "sqrt", "tanh", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
                 "asinh", "acosh", "atanh", "floor", "ceil", "round", "erf", "sigmoid", "reciprocal",
                 "hard_swish", "neg", "abs", "relu"}


def arg(c: OpCtx, i: int) -> str:
    """Input ``i`` moved into the call when it dies at this node (its buffer becomes the output), else borrowed."""
    return c.take(i) or c.x(i)


def _operand(c: OpCtx, fn: str) -> str:
    return arg(c, 0) if fn in TAKES_OPERAND else c.x(0)


@op(*FLOAT_UNARY)
def float_unary(c: OpCtx) -> str:
    c.types(0, FLOATS)
    fn = FLOAT_UNARY[c.op.op_type]
    return f"rt::{fn}({_operand(c, fn)})"


@op(*NUM_UNARY)
def num_unary(c: OpCtx) -> str:
    c.types(0, NUMS)
    fn = NUM_UNARY[c.op.op_type]
    return f"rt::{fn}({_operand(c, fn)})"


@op(*BINARY)
def binary(c: OpCtx) -> str:
    c.types(0, NUMS)
    c.need(c.t(0) == c.t(1), "operands of different dtypes")
    return f"rt::{BINARY[c.op.op_type]}({arg(c, 0)}, {arg(c, 1)})"


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
    return f"rt::identity({arg(c, 0)})"


@op("LeakyRelu", "Elu", "Celu", "ThresholdedRelu")
def alpha_act(c: OpCtx) -> str:
    c.types(0, FLOATS)
    default = {"LeakyRelu": 0.01, "Elu": 1.0, "Celu": 1.0, "ThresholdedRelu": 1.0}[c.op.op_type]
    fn = {"LeakyRelu": "leaky_relu", "Elu": "elu", "Celu": "celu", "ThresholdedRelu": "thresholded_relu"}
    x = arg(c, 0) if c.op.op_type == "LeakyRelu" else c.x(0)
    return f"rt::{fn[c.op.op_type]}({x}, {float_lit(c.a('alpha', default))})"


@op("Selu")
def selu(c: OpCtx) -> str:
    c.types(0, FLOATS)
    alpha = float_lit(c.a("alpha", 1.67326319217681884765625))
    gamma = float_lit(c.a("gamma", 1.05070102214813232421875))
    return f"rt::selu({c.x(0)}, {alpha}, {gamma})"


@op("HardSigmoid")
def hard_sigmoid(c: OpCtx) -> str:
    c.types(0, FLOATS)
    return f"rt::hard_sigmoid({arg(c, 0)}, {float_lit(c.a('alpha', 0.2))}, {float_lit(c.a('beta', 0.5))})"


@op("Gelu")
def gelu(c: OpCtx) -> str:
    c.types(0, FLOATS)
    approx = c.s("approximate", "none", {"none", "tanh"})
    return f"rt::gelu({arg(c, 0)}, {'true' if approx == 'tanh' else 'false'})"


@op("irc.Gelu", "irc.GeluTanh")
def irc_gelu(c: OpCtx) -> str:
    c.types(0, {"f32"})
    return f"rt::gelu({arg(c, 0)}, {'true' if c.op.op_type == 'GeluTanh' else 'false'})"


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
    return f"rt::clip({arg(c, 0)}, {lo}, {hi})"


@op("Swish")
def swish(c: OpCtx) -> str:
    c.types(0, FLOATS)
    return f"rt::swish({c.x(0)}, {float_lit(c.a('alpha', 1.0))})"


# Steps of `irc.Elementwise_*` chains as f32 Rust expressions of the running value `{}`, with
# the binding strength each needs of its operand and gives its result (3: an atom such as a
# name or call, 2: a prefix `-`, 1: `*` `/`, 0: `+` `-`), so that only needed parentheses are
# written (rustc warns about the others).
CHAIN_UNARY = {
    "Relu": ("rt::relu_f32({})", 0, 3), "Sigmoid": ("rt::sigmoid_f32({})", 0, 3),
    "Tanh": ("rt::tanh_f32({})", 0, 3), "Abs": ("{}.abs()", 3, 3), "Neg": ("-{}", 3, 2),
    "Exp": ("rt::exp_f32({})", 0, 3), "Log": ("{}.ln()", 3, 3), "Sqrt": ("{}.sqrt()", 3, 3),
    "Erf": ("rt::erf_f32({})", 0, 3), "Reciprocal": ("1.0 / {}", 2, 1), "Floor": ("{}.floor()", 3, 3),
    "Ceil": ("{}.ceil()", 3, 3), "Softplus": ("rt::softplus_f32({})", 0, 3),
    "Softsign": ("rt::softsign_f32({})", 0, 3),
}
CHAIN_BINARY = {"Add": ("{} + {}", 0, 0), "Sub": ("{} - {}", 0, 0), "Mul": ("{} * {}", 1, 1),
                "Div": ("{} / {}", 1, 1), "Max": ("rt::max_f32({}, {})", 0, 3), "Min": ("rt::min_f32({}, {})", 0, 3)}


def chain_closure(steps: list[str]) -> str:
    """`|t: f32, [e0, e1]: [f32; 2]| (t + e0) * e1`: the f32 closure computing a chain of elementwise steps."""
    expr, strength, extras = "t", 3, []
    for step in steps:
        if step not in CHAIN_UNARY and step not in CHAIN_BINARY:
            raise Unsupported(f"elementwise step {step}")
        template, needs, gives = CHAIN_UNARY.get(step) or CHAIN_BINARY[step]
        operand = expr if strength >= needs else f"({expr})"
        if step in CHAIN_BINARY:
            extras.append(f"e{len(extras)}")
            expr = template.format(operand, extras[-1])
        else:
            expr = template.format(operand)
        strength = gives
    return f"|t: f32, [{', '.join(extras)}]: [f32; {len(extras)}]| {expr}"


@op("irc.Elementwise_*")
def elementwise_chain(c: OpCtx) -> str:
    """One pass over the running tensor for the whole chain (docs/IRC_DOMAIN.md)."""
    steps = c.op.op_type.split("_")[1:]
    c.need(len(steps) >= 1, "empty elementwise chain")
    c.types(0, {"f32"})
    n_extra = sum(1 for s in steps if s in CHAIN_BINARY)
    c.need(len(c.ins) == 1 + n_extra and all(c.has(i) for i in range(len(c.ins))), "inputs do not match the steps")
    for i in range(1, len(c.ins)):
        c.types(i, {"f32"})
    closure = chain_closure(steps)
    extras = ", ".join(c.x(i) for i in range(1, len(c.ins)))
    return f"rt::fused({arg(c, 0)}, [{extras}], {closure})"
