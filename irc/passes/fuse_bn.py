"""Fold affine ops into the weights of the op before them.

* Conv / ConvTranspose / Gemm / MatMul followed by BatchNormalization: the
  normalization's per-channel scale and shift go into the weights and bias,
  computed in float64 (so tiny variances and huge means stay exact) and rounded
  once to the weight dtype.
* Conv followed by Mul or Add of a per-channel constant: into weights / bias.
* BatchNormalization followed by Mul or Add of a per-channel constant: into the
  normalization's own scale and bias.
* Pad (constant zeros, spatial axes only) before Conv: into the Conv's pads.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Op, Value
from .manager import Context, PassResult, register
from .util import attr_str, bypass, const, is_std, new_const, only_consumer

_STD = ("", "ai.onnx")


@register("fuse_bn", 2, "fold BatchNormalization and per-channel Mul/Add into Conv/Gemm weights; Pad into Conv")
def fuse_bn(graph: Graph, ctx: Context) -> PassResult:
    result = PassResult()
    for op in graph.topological_ops():
        if op not in graph.nx or op.domain not in _STD:
            continue
        t = op.op_type
        if t == "BatchNormalization":
            _bn_into_producer(graph, op, result)
        elif t in ("Mul", "Add"):
            _affine_into_producer(graph, op, result)
        elif t == "Conv":
            _pad_into_conv(graph, op, result)
    return result


def _bn_params(graph: Graph, bn: Op) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, shift) in float64 with bn(y) = y * scale + shift per channel."""
    if bn.attr("training_mode", 0) or any(v is not None for v in bn.outputs[1:]):
        return None
    if bn.attr("spatial", 1) != 1:
        return None
    params = [const(graph, bn.input(i)) for i in range(1, 5)]
    if any(p is None for p in params):
        return None
    gamma, beta, mean, var = (p.astype(np.float64).ravel() for p in params)
    eps = float(bn.attr("epsilon", 1e-5))
    scale = gamma / np.sqrt(var + eps)
    return scale, beta - mean * scale


def _bn_into_producer(graph: Graph, bn: Op, result: PassResult) -> None:
    y = bn.input(0)
    prod = graph.producer(y) if y is not None else None
    if prod is None or prod.domain not in _STD or only_consumer(graph, y) is not bn:
        return
    params = _bn_params(graph, bn)
    if params is None:
        return
    scale, shift = params
    if prod.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
        if _scale_shift(graph, prod, scale, shift) and bypass(graph, bn, y):
            result.note(f"BatchNormalization {bn.name} folded into {prod.op_type} {prod.name}")
    elif prod.op_type == "BatchNormalization":
        params0 = _bn_params(graph, prod)
        if params0 is not None:
            s0, b0 = params0
            _set_bn(graph, prod, s0 * scale, b0 * scale + shift)
            if bypass(graph, bn, y):
                result.note(f"BatchNormalization {bn.name} merged into {prod.name}")


def _set_bn(graph: Graph, bn: Op, scale: np.ndarray, shift: np.ndarray) -> None:
    """Rewrite bn as y = x*scale + shift: gamma=scale, beta=shift, mean=0, var=1-eps."""
    dtype = const(graph, bn.input(1)).dtype
    eps = float(bn.attr("epsilon", 1e-5))
    del eps  # with var = 1 and epsilon = 0 the op divides by exactly 1
    bn.set_attr("epsilon", 0.0)
    graph.set_input(bn, 1, new_const(graph, bn.name + "_scale", scale.astype(dtype)))
    graph.set_input(bn, 2, new_const(graph, bn.name + "_shift", shift.astype(dtype)))
    graph.set_input(bn, 3, new_const(graph, bn.name + "_mean", np.zeros_like(scale, dtype)))
    graph.set_input(bn, 4, new_const(graph, bn.name + "_var", np.ones_like(scale, dtype)))


def _channel_vector(graph: Graph, op: Op, y: Value) -> tuple[np.ndarray, Value] | None:
    """For Mul/Add(y, c) with c constant per channel of y (axis 1 for Conv/BN layouts)."""
    a, b = op.input(0), op.input(1)
    other = b if a is y else a
    c = const(graph, other)
    if c is None or c.dtype.kind != "f" or y.rank is None or c.ndim > y.rank:
        return None
    shape = (1,) * (y.rank - c.ndim) + c.shape
    if any(d != 1 for i, d in enumerate(shape) if i != 1):
        return None
    return c.astype(np.float64).ravel(), other


def _affine_into_producer(graph: Graph, op: Op, result: PassResult) -> None:
    for y in (op.input(0), op.input(1)):
        prod = graph.producer(y) if y is not None else None
        if prod is None or prod.domain not in _STD or prod.op_type not in ("Conv", "BatchNormalization"):
            continue
        if only_consumer(graph, y) is not op or op.input(0) is op.input(1):
            continue
        found = _channel_vector(graph, op, y)
        if found is None:
            continue
        vec, _ = found
        channels = _out_channels(graph, prod)
        if channels is None or vec.size not in (1, channels):
            continue
        vec = np.broadcast_to(vec, (channels,))
        mul = op.op_type == "Mul"
        scale = vec if mul else np.ones(channels)
        shift = np.zeros(channels) if mul else vec
        if prod.op_type == "Conv":
            ok = _scale_shift(graph, prod, scale, shift)
        else:
            params = _bn_params(graph, prod)
            ok = params is not None
            if ok:
                _set_bn(graph, prod, params[0] * scale, params[1] * scale + shift)
        if ok and bypass(graph, op, y):
            result.note(f"{op.op_type} {op.name} folded into {prod.op_type} {prod.name}")
            return


def _out_channels(graph: Graph, op: Op) -> int | None:
    if op.op_type == "BatchNormalization":
        p = const(graph, op.input(1))
        return None if p is None else p.size
    w = const(graph, op.input(1))
    return None if w is None else w.shape[0]


def _scale_shift(graph: Graph, op: Op, scale: np.ndarray, shift: np.ndarray) -> bool:
    """Rewrite ``op`` (weights W, bias B) so its output becomes out*scale + shift."""
    w = const(graph, op.input(1))
    if w is None or w.dtype.kind != "f":
        return False
    t = op.op_type
    bias_slot = 1 if t == "MatMul" else 2
    if t == "MatMul":
        if w.ndim != 2 or op.input(0).rank != 2:
            return False
        n = w.shape[1]
    elif t == "Gemm":
        if op.attr("transA", 0) not in (0, 1) or w.ndim != 2:
            return False
        n = w.shape[0] if op.attr("transB", 0) else w.shape[1]
    elif t == "Conv":
        n = w.shape[0]
    else:  # ConvTranspose: W is (C_in, C_out/group, k...)
        n = w.shape[1] * op.attr("group", 1)
    if scale.size != n or shift.size != n:
        return False
    b = const(graph, op.input(bias_slot)) if t != "MatMul" and op.n_inputs > bias_slot else None
    if t != "MatMul" and op.input(bias_slot) is not None and b is None:
        return False
    unit_scale = bool(np.all(scale == 1.0)) and t != "Gemm"
    w64 = None if unit_scale else w.astype(np.float64)
    if unit_scale:
        w_new = None  # a pure shift leaves the weights alone
    elif t == "Conv":
        w_new = w64 * scale.reshape((n,) + (1,) * (w.ndim - 1))
    elif t == "ConvTranspose":
        g = op.attr("group", 1)
        per = w.shape[1]
        grouped = w64.reshape((g, w.shape[0] // g, per) + w.shape[2:])
        w_new = (grouped * scale.reshape((g, 1, per) + (1,) * (w.ndim - 2))).reshape(w.shape)
    elif t == "Gemm":
        alpha, beta = float(op.attr("alpha", 1.0)), float(op.attr("beta", 1.0))
        w_new = w64 * alpha * (scale[:, None] if op.attr("transB", 0) else scale[None, :])
    else:
        w_new = w64 * scale[None, :]
    if t == "Gemm":
        if b is None:
            b64 = np.zeros(n)
        elif b.ndim == 2 and b.shape[0] != 1:
            b64 = np.broadcast_to(b.astype(np.float64) * beta, (b.shape[0], n))
        else:
            b64 = np.broadcast_to(b.astype(np.float64).reshape(-1) * beta, (n,))
        if b64.ndim == 2 and b64.shape[0] != 1:
            b_new = b64 * scale[None, :] + shift[None, :]
        else:
            b_new = b64.reshape(-1) * scale + shift
        op.set_attr("alpha", 1.0)
        op.set_attr("beta", 1.0)
    else:
        b_new = (np.zeros(n) if b is None else b.astype(np.float64)) * scale + shift
    if w_new is not None:
        graph.set_input(op, 1, new_const(graph, op.input(1).name + "_fused", w_new.astype(w.dtype)))
    if t == "MatMul":
        _add_bias_after(graph, op, b_new.astype(w.dtype))
    else:
        graph.set_input(op, bias_slot, new_const(graph, (op.name or t) + "_bias", b_new.astype(w.dtype)))
    return True


def _add_bias_after(graph: Graph, op: Op, bias: np.ndarray) -> None:
    """MatMul has no bias: out -> Add(out', bias), the gemm pass may fuse it later."""
    out = op.output(0)
    product = graph.new_value(out.name + "_mm", out.dtype, out.shape)
    graph.nx.remove_edge(op, out)
    graph.nx.add_edge(op, product, slot=0)
    graph.add_op("Add", [product, new_const(graph, out.name + "_bias", bias)], outputs=[out],
                 name=(op.name or "matmul") + "_bias")


def _pad_into_conv(graph: Graph, conv: Op, result: PassResult) -> None:
    x = conv.input(0)
    pad = graph.producer(x) if x is not None else None
    if pad is None or not is_std(pad, "Pad") or only_consumer(graph, x) is not conv:
        return
    if attr_str(pad, "mode", "constant") != "constant" or attr_str(conv, "auto_pad", "NOTSET") != "NOTSET":
        return
    pads = const(graph, pad.input(1)) if pad.n_inputs > 1 else np.array(pad.attr("pads", []))
    value = const(graph, pad.input(2)) if pad.n_inputs > 2 and pad.input(2) is not None else None
    if pad.n_inputs <= 1 and pad.attr("value", 0.0) != 0.0:
        return
    if pads is None or (value is not None and np.any(value != 0)) or pad.input(3) is not None:
        return
    rank = pads.size // 2
    if rank < 3 or np.any(pads < 0) or np.any(pads[[0, 1, rank, rank + 1]] != 0):
        return
    spatial = rank - 2
    old = conv.attr("pads", [0] * (2 * spatial))
    begins = [int(a) + int(b) for a, b in zip(old[:spatial], pads[2:rank], strict=True)]
    ends = [int(a) + int(b) for a, b in zip(old[spatial:], pads[rank + 2:], strict=True)]
    conv.set_attr("pads", begins + ends)
    graph.set_input(conv, 0, pad.input(0))
    graph.remove_op(pad)
    result.note(f"Pad {pad.name} folded into Conv {conv.name}")
