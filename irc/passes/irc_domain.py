"""Level 3: fusions into irc's own op domain ``irc`` (version 1).

Only the Rust backend implements these ops natively. So that onnxruntime (the
checker) and every other ONNX tool can still run the model, each irc op used is
also written as a model-local ONNX function whose body is the exact standard-ONNX
computation; docs/IRC_DOMAIN.md is the table of ops and their semantics.

* ``Conv|Gemm|MatMul`` followed by an activation -> ``irc.<Base><Act>``
  (e.g. ``irc.ConvRelu``): the base op's attributes plus ``act_alpha`` /
  ``act_beta`` for the activation's parameters.
* ``Conv`` whose only consumer is an ``Add`` of a same-shape tensor (ResNet's
  residual), optionally followed by an activation -> ``irc.ConvAdd<Act>`` (``X, W,
  B, R``: ``act(Conv(X, W, B) + R)``), which the backend runs as one GEMM whose C
  starts as ``R``.
* The decomposed layer norm (ReduceMean, Sub, Pow or Mul, ReduceMean, Add eps,
  Sqrt, Div, then optional Mul gamma / Add beta) over the last axis ->
  ``LayerNormalization`` (opset >= 17) or ``irc.LayerNormalization``.
* GELU, Erf form and tanh form -> ``Gelu`` (opset >= 20) or ``irc.Gelu`` /
  ``irc.GeluTanh``.
* Chains of two or more attribute-free elementwise ops over one running tensor
  (its shape unchanged by every step) -> ``irc.Elementwise_<Op1>_<Op2>...``, which
  the backend emits as one loop.

All fusions require float32 tensors (the function bodies use float constants).
"""

from __future__ import annotations

import math

import numpy as np
from onnx import AttributeProto, FunctionProto, ModelProto, TensorProto, helper

from ..ir import Graph, Op, Value
from .manager import Context, PassResult, register
from .util import const, is_std, new_const, only_consumer, root_of

DOMAIN = "irc"
VERSION = 1

BASE_ATTRS = {
    "Conv": {"auto_pad": AttributeProto.STRING, "dilations": AttributeProto.INTS,
             "group": AttributeProto.INT, "kernel_shape": AttributeProto.INTS,
             "pads": AttributeProto.INTS, "strides": AttributeProto.INTS},
    "Gemm": {"alpha": AttributeProto.FLOAT, "beta": AttributeProto.FLOAT,
             "transA": AttributeProto.INT, "transB": AttributeProto.INT},
    "MatMul": {},
}
BASE_INPUTS = {"Conv": ["X", "W", "B"], "Gemm": ["A", "B", "C"], "MatMul": ["A", "B"]}
ACTIVATIONS = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "Clip")


def _ref(name: str, kind: int, target: str | None = None) -> AttributeProto:
    return AttributeProto(name=target or name, ref_attr_name=name, type=kind)


def _activation_nodes(act: str, src: str, dst: str, opset: int) -> list:
    """Body nodes applying ``act`` from ``src`` to ``dst`` (parameters by reference)."""
    node = helper.make_node(act, [src], [dst])
    if act == "LeakyRelu":
        node.attribute.append(_ref("act_alpha", AttributeProto.FLOAT, "alpha"))
    elif act == "HardSigmoid":
        node.attribute.extend([_ref("act_alpha", AttributeProto.FLOAT, "alpha"),
                               _ref("act_beta", AttributeProto.FLOAT, "beta")])
    elif act == "Clip":
        lo = helper.make_node("Constant", [], ["act_min"])
        lo.attribute.append(_ref("act_alpha", AttributeProto.FLOAT, "value_float"))
        hi = helper.make_node("Constant", [], ["act_max"])
        hi.attribute.append(_ref("act_beta", AttributeProto.FLOAT, "value_float"))
        node = helper.make_node("Clip", [src, "act_min", "act_max"], [dst])
        return [lo, hi, node]
    return [node]


def fused_function(base: str, act: str, opset: int) -> FunctionProto:
    """The body of ``irc.<base><act>``: the base op, then the activation."""
    ins = BASE_INPUTS[base]
    node = helper.make_node(base, ins, ["base_out"])
    node.attribute.extend(_ref(a, k) for a, k in BASE_ATTRS[base].items())
    body = [node] + _activation_nodes(act, "base_out", "Y", opset)
    attrs = list(BASE_ATTRS[base]) + ["act_alpha", "act_beta"]
    return helper.make_function(DOMAIN, base + act, ins, ["Y"], body,
                                [helper.make_opsetid("", opset)], attributes=attrs)


def layernorm_function(opset: int) -> FunctionProto:
    """irc.LayerNormalization(X, Scale, B; epsilon) over the last axis, as ONNX."""
    def mean(src: str, dst: str) -> list:
        if opset >= 18:
            return [helper.make_node("ReduceMean", [src, "last_axis"], [dst], keepdims=1)]
        return [helper.make_node("ReduceMean", [src], [dst], axes=[-1], keepdims=1)]
    eps = helper.make_node("Constant", [], ["eps"])
    eps.attribute.append(_ref("epsilon", AttributeProto.FLOAT, "value_float"))
    body = [helper.make_node("Constant", [], ["last_axis"], value_ints=[-1])] if opset >= 18 else []
    body += mean("X", "mean") + [helper.make_node("Sub", ["X", "mean"], ["centered"]),
                                 helper.make_node("Mul", ["centered", "centered"], ["squares"])]
    body += mean("squares", "var") + [
        eps, helper.make_node("Add", ["var", "eps"], ["var_eps"]),
        helper.make_node("Sqrt", ["var_eps"], ["std"]),
        helper.make_node("Div", ["centered", "std"], ["normed"]),
        helper.make_node("Mul", ["normed", "Scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "B"], ["Y"]),
    ]
    return helper.make_function(DOMAIN, "LayerNormalization", ["X", "Scale", "B"], ["Y"], body,
                                [helper.make_opsetid("", opset)], attributes=["epsilon"])


def gelu_function(tanh: bool, opset: int) -> FunctionProto:
    """irc.Gelu: 0.5x(1+erf(x/sqrt2)); irc.GeluTanh: 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3)))."""
    def c(name: str, v: float):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.FLOAT, [], [v]))
    if tanh:
        body = [c("k", 0.044715), c("s", math.sqrt(2 / math.pi)), c("half", 0.5), c("one", 1.0),
                helper.make_node("Mul", ["X", "X"], ["x2"]), helper.make_node("Mul", ["x2", "X"], ["x3"]),
                helper.make_node("Mul", ["x3", "k"], ["kx3"]), helper.make_node("Add", ["X", "kx3"], ["inner"]),
                helper.make_node("Mul", ["inner", "s"], ["arg"]), helper.make_node("Tanh", ["arg"], ["t"])]
    else:
        body = [c("r", 1 / math.sqrt(2)), c("half", 0.5), c("one", 1.0),
                helper.make_node("Mul", ["X", "r"], ["arg"]), helper.make_node("Erf", ["arg"], ["t"])]
    body += [helper.make_node("Add", ["t", "one"], ["onep"]), helper.make_node("Mul", ["X", "half"], ["hx"]),
             helper.make_node("Mul", ["hx", "onep"], ["Y"])]
    return helper.make_function(DOMAIN, "GeluTanh" if tanh else "Gelu", ["X"], ["Y"], body,
                                [helper.make_opsetid("", opset)])


def _declare(graph: Graph, fn: FunctionProto) -> None:
    """Add the function (once) and the irc opset import to the model."""
    info = root_of(graph).model
    info.opset_imports.setdefault(DOMAIN, VERSION)
    info.ir_version = max(info.ir_version, 8)  # model-local functions need IR 8
    if info.extra is None:
        info.extra = ModelProto()
    if not any(f.domain == fn.domain and f.name == fn.name for f in info.extra.functions):
        info.extra.functions.append(fn)


def _is_f32(*values: Value | None) -> bool:
    return all(v is not None and v.dtype == TensorProto.FLOAT for v in values)


@register("irc_fuse", 3, "irc-domain fusions: Conv/Gemm/MatMul+activation, LayerNorm, GELU")
def irc_fuse(graph: Graph, ctx: Context) -> PassResult:
    result = PassResult()
    opset = ctx.opset()
    for op in graph.topological_ops():
        if op not in graph.nx or op.domain not in ("", "ai.onnx"):
            continue
        if op.op_type in ("Erf", "Tanh") and _fuse_gelu(graph, op, opset, result):
            continue
        if op.op_type == "Add" and _fuse_conv_add(graph, op, opset, result):
            continue
        if op.op_type in ACTIVATIONS:
            _fuse_activation(graph, op, opset, result)
        elif op.op_type == "ReduceMean":
            _fuse_layernorm(graph, op, opset, result)
    return result


# -- base op + activation -------------------------------------------------------------


def _activation_params(graph: Graph, act: Op, opset: int) -> tuple[float, float] | None:
    t = act.op_type
    if t == "LeakyRelu":
        return float(act.attr("alpha", 0.01)), 0.0
    if t == "HardSigmoid":
        return float(act.attr("alpha", 0.2)), float(act.attr("beta", 0.5))
    if t == "Clip":
        if opset < 12:
            return None
        lo, hi = const(graph, act.input(1)), const(graph, act.input(2))
        if (act.input(1) is not None and lo is None) or (act.input(2) is not None and hi is None):
            return None
        big = float(np.finfo(np.float32).max)
        return (float(lo) if lo is not None else -big), (float(hi) if hi is not None else big)
    return 0.0, 0.0


def _fuse_activation(graph: Graph, act: Op, opset: int, result: PassResult) -> None:
    y = act.input(0)
    base = graph.producer(y) if y is not None else None
    if base is None or not is_std(base, "Conv", "Gemm", "MatMul") or only_consumer(graph, y) is not act:
        return
    if act.op_type == "Tanh" and _feeds_gelu(graph, act):
        return
    if not _is_f32(y, act.output(0)) or base.n_outputs != 1:
        return
    params = _activation_params(graph, act, opset)
    if params is None:
        return
    ins = list(base.inputs)
    if base.op_type == "Conv" and (len(ins) < 3 or ins[2] is None):
        w = const(graph, ins[1])
        if w is None:
            return
        ins = ins[:2] + [new_const(graph, (base.name or "conv") + "_zero_bias",
                                   np.zeros(w.shape[0], np.float32))]
    if base.op_type == "Gemm" and (len(ins) < 3 or ins[2] is None):
        ins = ins[:2] + [new_const(graph, (base.name or "gemm") + "_zero_bias", np.zeros((), np.float32))]
    attrs = {k: a.value for k, a in base.attrs.items()}
    out = act.output(0)
    graph.remove_op(act, keep_outputs=True)
    graph.remove_op(base)
    name = base.op_type + act.op_type
    fused = graph.add_op(name, ins, outputs=[out], domain=DOMAIN, name=base.name)
    for k, v in attrs.items():
        fused.set_attr(k, v)
    fused.set_attr("act_alpha", params[0])
    fused.set_attr("act_beta", params[1])
    _declare(graph, fused_function(base.op_type, act.op_type, opset))
    result.note(f"{base.op_type} {base.name} + {act.op_type} -> irc.{name}")


def conv_add_function(act: str | None, opset: int) -> FunctionProto:
    """The body of ``irc.ConvAdd<act>``: Conv, Add of the residual R, then the activation."""
    conv = helper.make_node("Conv", ["X", "W", "B"], ["conv_out"])
    conv.attribute.extend(_ref(a, k) for a, k in BASE_ATTRS["Conv"].items())
    body = [conv, helper.make_node("Add", ["conv_out", "R"], ["sum" if act else "Y"])]
    attrs = list(BASE_ATTRS["Conv"])
    if act:
        body += _activation_nodes(act, "sum", "Y", opset)
        attrs += ["act_alpha", "act_beta"]
    return helper.make_function(DOMAIN, "ConvAdd" + (act or ""), ["X", "W", "B", "R"], ["Y"], body,
                                [helper.make_opsetid("", opset)], attributes=attrs)


def _fuse_conv_add(graph: Graph, add: Op, opset: int, result: PassResult) -> bool:
    """``Add(Conv(..), R)`` (+ activation) -> ``irc.ConvAdd<Act>``; True when fused."""
    if add.n_inputs != 2 or add.n_outputs != 1 or add.input(0) is add.input(1):
        return False
    out = add.output(0)
    if not _is_f32(add.input(0), add.input(1), out):
        return False
    for y, r in ((add.input(0), add.input(1)), (add.input(1), add.input(0))):
        base = graph.producer(y)
        if (base is None or not is_std(base, "Conv") or base.n_outputs != 1 or only_consumer(graph, y) is not add
                or not _same_static(y, r) or not _same_static(y, out)):
            continue
        ins = list(base.inputs)
        if len(ins) < 3 or ins[2] is None:
            w = const(graph, ins[1])
            if w is None:
                continue
            ins = ins[:2] + [new_const(graph, (base.name or "conv") + "_zero_bias", np.zeros(w.shape[0], np.float32))]
        # An activation that alone consumes the sum joins the op.
        act = only_consumer(graph, out)
        params = None
        if (act is not None and is_std(act, *ACTIVATIONS) and act.input(0) is out and _is_f32(act.output(0))
                and not (act.op_type == "Tanh" and _feeds_gelu(graph, act))):
            params = _activation_params(graph, act, opset)
        attrs = {k: a.value for k, a in base.attrs.items()}
        final = act.output(0) if params is not None else out
        if params is not None:
            graph.remove_op(act, keep_outputs=True)
            graph.remove_op(add)
        else:
            graph.remove_op(add, keep_outputs=True)
        graph.remove_op(base)
        act_name = act.op_type if params is not None else None
        name = "ConvAdd" + (act_name or "")
        fused = graph.add_op(name, ins + [r], outputs=[final], domain=DOMAIN, name=base.name)
        for k, v in attrs.items():
            fused.set_attr(k, v)
        if params is not None:
            fused.set_attr("act_alpha", params[0])
            fused.set_attr("act_beta", params[1])
        _declare(graph, conv_add_function(act_name, opset))
        result.note(f"Conv {base.name} + Add {add.name}{' + ' + act_name if act_name else ''} -> irc.{name}")
        return True
    return False


def _feeds_gelu(graph: Graph, tanh: Op) -> bool:
    return _gelu_match(graph, tanh) is not None


# -- layer norm ---------------------------------------------------------------------------


def _reduces_last_axis(graph: Graph, op: Op, rank: int | None) -> bool:
    axes = op.attr("axes")
    if axes is None and op.n_inputs > 1:
        axes = const(graph, op.input(1))
    if axes is None or rank is None or op.attr("keepdims", 1) != 1:
        return False
    axes = [int(a) for a in np.asarray(axes).ravel()]
    return len(axes) == 1 and axes[0] in (-1, rank - 1)


def _single(graph: Graph, value: Value | None, *types: str) -> Op | None:
    op = only_consumer(graph, value) if value is not None else None
    return op if op is not None and is_std(op, *types) else None


def _other(op: Op, value: Value) -> Value | None:
    a, b = op.input(0), op.input(1)
    return b if a is value else a


def _scalar(graph: Graph, value: Value | None) -> float | None:
    c = const(graph, value)
    return float(c.ravel()[0]) if c is not None and c.size == 1 else None


def _fuse_layernorm(graph: Graph, mean_op: Op, opset: int, result: PassResult) -> None:
    x, mean = mean_op.input(0), mean_op.output(0)
    if x is None or not _is_f32(x) or not _reduces_last_axis(graph, mean_op, x.rank):
        return
    sub = _single(graph, mean, "Sub")
    if sub is None or sub.input(0) is not x or sub.input(1) is not mean:
        return
    d = sub.output(0)
    users = graph.consumers(d)
    if graph.is_output(d) or len(users) != 2:
        return
    sq = next((u for u in users if is_std(u, "Pow") and _scalar(graph, u.input(1)) == 2.0
               or is_std(u, "Mul") and u.input(0) is d and u.input(1) is d), None)
    div = next((u for u in users if is_std(u, "Div") and u.input(0) is d), None)
    if sq is None or div is None:
        return
    var_op = _single(graph, sq.output(0), "ReduceMean")
    if var_op is None or not _reduces_last_axis(graph, var_op, x.rank):
        return
    add_eps = _single(graph, var_op.output(0), "Add")
    eps = _scalar(graph, _other(add_eps, var_op.output(0))) if add_eps is not None else None
    sqrt = _single(graph, add_eps.output(0), "Sqrt") if eps is not None else None
    if sqrt is None or div.input(1) is not sqrt.output(0) or only_consumer(graph, sqrt.output(0)) is not div:
        return
    channels = x.shape[-1]
    if not isinstance(channels, int):
        return
    ops = [mean_op, sub, sq, var_op, add_eps, sqrt, div]
    scale, bias = np.ones(channels, np.float32), np.zeros(channels, np.float32)
    mul = _single(graph, div.output(0), "Mul")
    gamma = _vector(graph, _other(mul, div.output(0)), channels) if mul is not None else None
    if gamma is not None:
        scale = gamma
        ops.append(mul)
        add = _single(graph, mul.output(0), "Add")
        beta = _vector(graph, _other(add, mul.output(0)), channels) if add is not None else None
        if beta is not None:
            bias = beta
            ops.append(add)
    out = ops[-1].output(0)
    graph.remove_op(ops[-1], keep_outputs=True)
    for op in reversed(ops[:-1]):
        graph.remove_op(op)
    ins = [x, new_const(graph, "ln_scale", scale), new_const(graph, "ln_bias", bias)]
    if opset >= 17:
        graph.add_op("LayerNormalization", ins, outputs=[out], name=mean_op.name,
                     attrs={"axis": -1, "epsilon": eps})
        result.note(f"decomposed layer norm at {mean_op.name} -> LayerNormalization")
    else:
        graph.add_op("LayerNormalization", ins, outputs=[out], domain=DOMAIN, name=mean_op.name,
                     attrs={"epsilon": eps})
        _declare(graph, layernorm_function(opset))
        result.note(f"decomposed layer norm at {mean_op.name} -> irc.LayerNormalization")


def _vector(graph: Graph, value: Value | None, channels: int) -> np.ndarray | None:
    c = const(graph, value)
    if c is None or c.dtype != np.float32 or c.size not in (1, channels):
        return None
    if any(d != 1 for d in c.shape[:-1]):
        return None
    return np.broadcast_to(c.reshape(-1), (channels,)).astype(np.float32)


# -- GELU -----------------------------------------------------------------------------------


def _near(v: float | None, target: float) -> bool:
    return v is not None and abs(v - target) <= 1e-4 * abs(target)


def _gelu_input(graph: Graph, op: Op) -> Value | None:
    """x for Erf(x/sqrt2) or Tanh(sqrt(2/pi) * (x + 0.044715 x^3))."""
    arg = op.input(0)
    p = graph.producer(arg) if arg is not None else None
    if p is None or only_consumer(graph, arg) is not op:
        return None
    if op.op_type == "Erf":
        if is_std(p, "Div") and _near(_scalar(graph, p.input(1)), math.sqrt(2)):
            return p.input(0)
        if is_std(p, "Mul"):
            for a, b in ((p.input(0), p.input(1)), (p.input(1), p.input(0))):
                if _near(_scalar(graph, b), 1 / math.sqrt(2)):
                    return a
        return None
    if not is_std(p, "Mul"):
        return None
    for inner, k in ((p.input(0), p.input(1)), (p.input(1), p.input(0))):
        if not _near(_scalar(graph, k), math.sqrt(2 / math.pi)):
            continue
        add = graph.producer(inner) if inner is not None else None
        if add is None or not is_std(add, "Add") or only_consumer(graph, inner) is not p:
            return None
        for x, cube_term in ((add.input(0), add.input(1)), (add.input(1), add.input(0))):
            m = graph.producer(cube_term) if cube_term is not None else None
            if m is None or not is_std(m, "Mul"):
                continue
            for cube, c in ((m.input(0), m.input(1)), (m.input(1), m.input(0))):
                pw = graph.producer(cube) if cube is not None else None
                if (_near(_scalar(graph, c), 0.044715) and pw is not None and is_std(pw, "Pow")
                        and pw.input(0) is x and _scalar(graph, pw.input(1)) == 3.0):
                    return x
    return None


def _gelu_match(graph: Graph, op: Op):
    """(x, output value, ops of the pattern) for a GELU around Erf/Tanh ``op``."""
    x = _gelu_input(graph, op)
    if x is None:
        return None
    one = _single(graph, op.output(0), "Add")
    if one is None or not _near(_scalar(graph, _other(one, op.output(0))), 1.0):
        return None
    t = one.output(0)
    m1 = _single(graph, t, "Mul")
    if m1 is None:
        return None
    o = _other(m1, t)
    if o is x:  # x * (1 + erf) then * 0.5
        m2 = _single(graph, m1.output(0), "Mul")
        if m2 is not None and _near(_scalar(graph, _other(m2, m1.output(0))), 0.5):
            return x, m2.output(0), [m1, m2]
        return None
    if _near(_scalar(graph, o), 0.5):  # (1 + erf) * 0.5 then * x
        m2 = _single(graph, m1.output(0), "Mul")
        if m2 is not None and _other(m2, m1.output(0)) is x:
            return x, m2.output(0), [m1, m2]
        return None
    half = graph.producer(o) if o is not None else None  # (0.5 * x) * (1 + erf)
    if (half is not None and is_std(half, "Mul") and only_consumer(graph, o) is m1
            and x in (half.input(0), half.input(1))
            and _near(_scalar(graph, _other(half, x)), 0.5)):
        return x, m1.output(0), [half, m1]
    return None


def _fuse_gelu(graph: Graph, op: Op, opset: int, result: PassResult) -> bool:
    match = _gelu_match(graph, op)
    if match is None:
        return False
    x, out, tail = match
    if not _is_f32(x, out):
        return False
    tanh = op.op_type == "Tanh"
    head = [graph.producer(op.input(0))]
    if tanh:
        mul_k = head[0]
        inner = next(v for v in mul_k.inputs if const(graph, v) is None)
        add = graph.producer(inner)
        cube_term = _other(add, x)
        m = graph.producer(cube_term)
        pw = graph.producer(next(v for v in m.inputs if const(graph, v) is None))
        if len(graph.uses(pw.output(0))) != 1 or len(graph.uses(cube_term)) != 1:
            return False
        head = [pw, m, add, mul_k]
    chain = head + [op, _single(graph, op.output(0), "Add")] + tail
    last = tail[-1]
    graph.remove_op(last, keep_outputs=True)
    for o in reversed(chain[:-1]):
        graph.remove_op(o)
    if opset >= 20:
        graph.add_op("Gelu", [x], outputs=[out], name=op.name,
                     attrs={"approximate": "tanh" if tanh else "none"})
    else:
        graph.add_op("GeluTanh" if tanh else "Gelu", [x], outputs=[out], domain=DOMAIN, name=op.name)
        _declare(graph, gelu_function(tanh, opset))
    result.note(f"GELU ({'tanh' if tanh else 'erf'} form) at {op.name} -> Gelu")
    return True


# -- elementwise chains ---------------------------------------------------------------------

CHAIN_UNARY = ("Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Exp", "Log", "Sqrt", "Erf", "Reciprocal",
               "Floor", "Ceil", "Softplus", "Softsign")
CHAIN_BINARY = ("Add", "Sub", "Mul", "Div", "Max", "Min")
_COMMUTATIVE = ("Add", "Mul", "Max", "Min")


def chain_function(steps: list[str], opset: int) -> FunctionProto:
    """irc.Elementwise_<steps>: X through each step; a binary step reads the next extra input."""
    inputs, nodes, run, k = ["X"], [], "X", 0
    for i, step in enumerate(steps):
        out = "Y" if i == len(steps) - 1 else f"t{i}"
        if step in CHAIN_BINARY:
            inputs.append(f"E{k}")
            nodes.append(helper.make_node(step, [run, f"E{k}"], [out]))
            k += 1
        else:
            nodes.append(helper.make_node(step, [run], [out]))
        run = out
    return helper.make_function(DOMAIN, "Elementwise_" + "_".join(steps), inputs, ["Y"], nodes,
                                [helper.make_opsetid("", opset)])


def _chain_step(graph: Graph, op: Op, run: Value) -> Value | None:
    """The extra input if ``op`` can take ``run`` as its running value (None: cannot;
    ``run`` itself for a unary op)."""
    if not is_std(op, *CHAIN_UNARY, *CHAIN_BINARY) or op.attrs or op.n_outputs != 1:
        return None
    out = op.output(0)
    if out is None or not _is_f32(out) or run.shape is None or not _same_static(run, out):
        return None
    if op.op_type in CHAIN_UNARY:
        return run if op.n_inputs == 1 and op.input(0) is run else None
    if op.n_inputs != 2 or op.input(0) is op.input(1):
        return None
    a, b = op.input(0), op.input(1)
    if a is run:
        return b if _is_f32(b) else None
    if b is run and op.op_type in _COMMUTATIVE:
        return a if _is_f32(a) else None
    return None


def _same_static(a: Value, b: Value) -> bool:
    return a.shape is not None and b.shape is not None and len(a.shape) == len(b.shape) and all(
        x == y and x is not None for x, y in zip(a.shape, b.shape, strict=True))


@register("irc_chain", 3, "fuse chains of elementwise ops into one irc.Elementwise_* op")
def irc_chain(graph: Graph, ctx: Context) -> PassResult:
    result = PassResult()
    opset = ctx.opset()
    for op in graph.topological_ops():
        if op not in graph.nx or not is_std(op, *CHAIN_UNARY, *CHAIN_BINARY):
            continue
        start = _chain_start(graph, op)
        if start is None:
            continue
        x, extras, ops = start, [], []
        run, cur = x, op
        while cur is not None:
            extra = _chain_step(graph, cur, run)
            if extra is None:
                break
            ops.append(cur)
            if extra is not run:
                extras.append(extra)
            run = cur.output(0)
            nxt = only_consumer(graph, run)
            cur = nxt if nxt is not None and nxt.domain in ("", "ai.onnx") else None
        if len(ops) < 2 or any(e is run for e in extras):
            continue
        steps = [o.op_type for o in ops]
        out = ops[-1].output(0)
        graph.remove_op(ops[-1], keep_outputs=True)
        for o in reversed(ops[:-1]):
            graph.remove_op(o)
        name = "Elementwise_" + "_".join(steps)
        graph.add_op(name, [x, *extras], outputs=[out], domain=DOMAIN, name=ops[0].name)
        _declare(graph, chain_function(steps, opset))
        result.note(f"{' -> '.join(steps)} at {ops[0].name} -> irc.{name}")
    return result


def _chain_start(graph: Graph, op: Op) -> Value | None:
    """The running input of a chain's first op (the input with the output's shape)."""
    candidates = [op.input(0)] + ([op.input(1)] if op.op_type in _COMMUTATIVE and op.n_inputs == 2 else [])
    for v in candidates:
        if v is not None and _is_f32(v) and _chain_step(graph, op, v) is not None:
            return v
    return None
