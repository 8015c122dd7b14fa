"""Models for the text/sequence fast paths of the Rust runtime, checked against onnxruntime.

* ``irc_seq``: standard-ONNX patterns that ``irc.passes.optimize(graph, level=3)`` turns into
  `irc.LayerNormalization`, `irc.Gelu`, `irc.GeluTanh` and `irc.Elementwise_*` (the optimized
  model carries the ops' ONNX functions, so onnxruntime runs it as is);
* ``seq_fast``: the shapes and layouts that take the runtime's fast paths (last-axis softmax
  and layer norm, contiguous reductions, blocked transposes, zero-copy reshapes, in-place
  arithmetic on dying operands, vectorized exp/tanh/erf over a wide range) and their
  fallbacks next to them;
* ``rnn``: LSTM / GRU / RNN in all directions, with biases, initial states, peepholes and
  sequence lengths (batch-first layouts are not checked: onnxruntime does not run them).
"""

from __future__ import annotations

import numpy as np
from onnx import ModelProto, helper
from onnx import TensorProto as TP

from .op_models import F, model, w

node = helper.make_node


def fused(name: str, nodes: list, inputs, inits=(), opset: int = 17, expect: str = "") -> ModelProto:
    """The model optimized at level 3; ``expect`` must be the op_type of one resulting irc op."""
    from irc.ir.onnx_io import from_onnx, to_onnx
    from irc.passes import optimize

    graph = from_onnx(model(name, nodes, inputs, [("y", F)], list(inits), opset=opset))
    optimize(graph, level=3)
    found = [op.op_type for op in graph.ops if op.domain == "irc"]
    assert expect in found, f"{name}: expected irc.{expect}, got {graph.op_histogram()}"
    return to_onnx(graph)


def _irc_family(rng) -> dict[str, ModelProto]:
    out = {}
    ln = [node("ReduceMean", ["x"], ["m"], axes=[-1]), node("Sub", ["x", "m"], ["d"]),
          node("Pow", ["d", "two"], ["d2"]), node("ReduceMean", ["d2"], ["v"], axes=[-1]),
          node("Add", ["v", "eps"], ["ve"]), node("Sqrt", ["ve"], ["s"]), node("Div", ["d", "s"], ["n"]),
          node("Mul", ["n", "g"], ["ng"]), node("Add", ["ng", "b"], ["y"])]
    out["layer_norm"] = fused("ln", ln, [("x", F, [2, 5, 16])],
                              [("two", np.float32(2)), ("eps", np.float32(1e-5)), ("g", w(rng, 16)),
                               ("b", w(rng, 16))], opset=16, expect="LayerNormalization")
    ln_plain = [node("ReduceMean", ["x"], ["m"], axes=[-1]), node("Sub", ["x", "m"], ["d"]),
                node("Mul", ["d", "d"], ["d2"]), node("ReduceMean", ["d2"], ["v"], axes=[-1]),
                node("Add", ["v", "eps"], ["ve"]), node("Sqrt", ["ve"], ["s"]), node("Div", ["d", "s"], ["y"])]
    out["layer_norm_plain"] = fused("lnp", ln_plain, [("x", F, [3, 7])], [("eps", np.float32(1e-3))],
                                    opset=16, expect="LayerNormalization")
    gelu = [node("Mul", ["x", "k"], ["xs"]), node("Erf", ["xs"], ["e"]), node("Add", ["e", "one"], ["e1"]),
            node("Mul", ["x", "e1"], ["p"]), node("Mul", ["p", "half"], ["y"])]
    out["gelu"] = fused("gelu", [node("Mul", ["x0", "spread"], ["x"])] + gelu, [("x0", F, [2, 3, 33])],
                        [("spread", np.float32(4)), ("k", np.float32(1 / np.sqrt(2))), ("one", np.float32(1)),
                         ("half", np.float32(0.5))], expect="Gelu")
    tanh = [node("Pow", ["x", "three"], ["x3"]), node("Mul", ["x3", "c"], ["x3c"]), node("Add", ["x", "x3c"], ["u"]),
            node("Mul", ["u", "k"], ["uk"]), node("Tanh", ["uk"], ["t"]), node("Add", ["t", "one"], ["t1"]),
            node("Mul", ["x", "t1"], ["p"]), node("Mul", ["p", "half"], ["y"])]
    out["gelu_tanh"] = fused("gelut", [node("Mul", ["x0", "spread"], ["x"])] + tanh, [("x0", F, [2, 40])],
                             [("spread", np.float32(4)), ("three", np.float32(3)), ("c", np.float32(0.044715)),
                              ("k", np.float32(np.sqrt(2 / np.pi))), ("one", np.float32(1)),
                              ("half", np.float32(0.5))], expect="GeluTanh")
    # Extras of every broadcast kind: a bias row, per channel, same shape, a scalar, a middle dim.
    shape = [2, 3, 4, 5]
    chain = [node("Add", ["x", "bias"], ["a"]), node("Mul", ["ch", "a"], ["b"]), node("Sigmoid", ["b"], ["c"]),
             node("Sub", ["c", "full"], ["d"]), node("Tanh", ["d"], ["e"]), node("Div", ["e", "mid"], ["f"]),
             node("Max", ["f", "lo"], ["g"]), node("Min", ["g", "hi"], ["h"]), node("Abs", ["h"], ["i"]),
             node("Neg", ["i"], ["y"])]
    out["chain_broadcast"] = fused("chain1", chain, [("x", F, shape), ("full", F, shape)],
                                   [("bias", w(rng, 5)), ("ch", w(rng, 3, 1, 1)), ("mid", np.abs(w(rng, 4, 1)) + 0.5),
                                    ("lo", np.float32(-0.7)), ("hi", np.float32(0.9))],
                                   expect="Elementwise_Add_Mul_Sigmoid_Sub_Tanh_Div_Max_Min_Abs_Neg")
    unary = [node("Relu", ["x"], ["a"]), node("Exp", ["a"], ["b"]), node("Log", ["b"], ["c"]),
             node("Sqrt", ["c"], ["d"]), node("Erf", ["d"], ["e"]), node("Add", ["e", "one"], ["f"]),
             node("Reciprocal", ["f"], ["g"]), node("Mul", ["g", "ten"], ["h"]), node("Floor", ["h"], ["i"]),
             node("Softplus", ["i"], ["j"]), node("Softsign", ["j"], ["k"]), node("Mul", ["k", "x"], ["m"]),
             node("Ceil", ["m"], ["y"])]
    out["chain_unary"] = fused("chain2", unary, [("x", F, [3, 17])],
                               [("one", np.float32(1)), ("ten", np.float32(10.3))],
                               expect="Elementwise_Relu_Exp_Log_Sqrt_Erf_Add_Reciprocal_Mul_Floor_Softplus_"
                                      "Softsign_Mul_Ceil")
    return out


def _seq_fast_family(rng) -> dict[str, ModelProto]:
    out = {}
    ln = lambda axis, bias: node("LayerNormalization", ["x", "g"] + (["b"] if bias else []), ["y"],  # noqa: E731
                                 axis=axis, epsilon=1e-4)
    out["layernorm_last"] = model("ln", [ln(-1, True)], [("x", F, ["N", 6, 24])], [("y", F)],
                                  [("g", w(rng, 24)), ("b", w(rng, 24))])
    out["layernorm_axis1"] = model("ln1", [ln(1, False)], [("x", F, ["N", 3, 5])], [("y", F)], [("g", w(rng, 3, 5))])
    out["layernorm_dying"] = model("ln2", [node("Relu", ["x0"], ["x"]), ln(-1, True)], [("x0", F, ["N", 9])],
                                   [("y", F)], [("g", w(rng, 9)), ("b", w(rng, 9))])
    for approx in ("none", "tanh"):
        out[f"gelu20_{approx}"] = model("g", [node("Mul", ["x", "s"], ["xs"]), node("Gelu", ["xs"], ["y"],
                                                                                    approximate=approx)],
                                        [("x", F, ["N", 50])], [("y", F)], [("s", np.float32(5))], opset=20)
    for op in ("Exp", "Tanh", "Sigmoid", "Erf"):
        out[f"wide_{op.lower()}"] = model(op, [node("Mul", ["x", "s"], ["xs"]), node(op, ["xs"], ["y"])],
                                          [("x", F, ["N", 3, 21])], [("y", F)], [("s", np.float32(12))])
    for key, (op, axis, opset, shape) in {
        "softmax_last": ("Softmax", -1, 13, ["N", 3, 37]),
        "softmax_middle": ("Softmax", 1, 13, ["N", 3, 5]),
        "softmax_legacy": ("Softmax", 1, 11, ["N", 3, 4]),
        "logsoftmax_last": ("LogSoftmax", -1, 13, ["N", 19]),
    }.items():
        out[key] = model(key, [node("Mul", ["x", "s"], ["xs"]), node(op, ["xs"], ["y"], axis=axis)],
                         [("x", F, shape)], [("y", F)], [("s", np.float32(30))], opset=opset)
    for key, (op, axes, keep, shape) in {
        "reducemax_last": ("ReduceMax", [2], 0, ["N", 4, 33]),
        "reducemean_last": ("ReduceMean", [-1], 1, ["N", 4, 6]),
        "reducesum_middle": ("ReduceSum", [1], 1, ["N", 4, 6]),
        "reducel2_pair": ("ReduceL2", [1, 2], 0, ["N", 3, 4, 5]),
        "reducemin_split": ("ReduceMin", [0, 2], 1, ["N", 3, 4]),
        "reducesumsq_inner": ("ReduceSumSquare", [2, 3], 1, ["N", 3, 4, 5]),
        "reducel1_all": ("ReduceL1", None, 0, ["N", 3, 17]),
        "reducemax_first": ("ReduceMax", [0], 0, ["N", 5]),
    }.items():
        if op == "ReduceSum":  # axes is an input from opset 13
            out[key] = model(key, [node(op, ["x", "axes"], ["y"], keepdims=keep)], [("x", F, shape)], [("y", F)],
                             [("axes", np.array(axes, np.int64))], opset=17)
            continue
        attrs = {"keepdims": keep} | ({"axes": axes} if axes else {})
        out[key] = model(key, [node(op, ["x"], ["y"], **attrs)], [("x", F, shape)], [("y", F)], opset=17)
    for key, (perm, shape) in {
        "transpose_heads": ([0, 2, 1, 3], ["N", 3, 4, 5]),
        "transpose_last2": ([0, 1, 3, 2], ["N", 3, 19, 21]),
        "transpose_qkv": ([2, 0, 3, 1, 4], ["N", 4, 3, 2, 5]),
        "transpose_2d": ([1, 0], [17, "N"]),
        "transpose_rotate": ([1, 2, 0], ["N", 3, 4]),
    }.items():
        out[key] = model(key, [node("Transpose", ["x"], ["y"], perm=perm)], [("x", F, shape)], [("y", F)])
    reshape = [node("Relu", ["x"], ["r"]), node("Reshape", ["r", "shape"], ["a"]),
               node("Unsqueeze", ["a", "ax"], ["b"]), node("Squeeze", ["b", "ax"], ["c"]),
               node("Flatten", ["c"], ["d"], axis=1), node("Add", ["d", "keep"], ["y"])]
    out["reshape_chain"] = model("rs", reshape, [("x", F, [2, 3, 4])], [("y", F)],
                                 [("shape", np.array([2, 12], np.int64)), ("ax", np.array([1], np.int64)),
                                  ("keep", w(rng, 12))])
    # `r` is read twice (Reshape and Add): it must not be moved into the Reshape.
    shared = [node("Relu", ["x"], ["r"]), node("Reshape", ["r", "shape"], ["a"]),
              node("Reshape", ["a", "back"], ["b"]), node("Add", ["b", "r"], ["y"])]
    out["reshape_shared"] = model("rs2", shared, [("x", F, [2, 3, 4])], [("y", F)],
                                  [("shape", np.array([-1], np.int64)), ("back", np.array([2, 3, 4], np.int64))])
    # In place into the second operand of non-commutative ops, and a dying operand smaller
    # than the output (no reuse possible).
    inplace = [node("Relu", ["x"], ["r"]), node("Sub", ["bias", "r"], ["s"]), node("Div", ["k", "s"], ["d"]),
               node("ReduceMax", ["d"], ["m"], axes=[2], keepdims=1), node("Add", ["m", "x"], ["y"])]
    out["inplace_rhs"] = model("ip", inplace, [("x", F, ["N", 3, 4])], [("y", F)],
                               [("bias", w(rng, 4) + 3), ("k", np.float32(0.5))])
    embed = [node("Gather", ["table", "ids"], ["e"]), node("Transpose", ["e"], ["t"], perm=[0, 2, 1]),
             node("ReduceMax", ["t"], ["m"], axes=[2], keepdims=0), node("Softmax", ["m"], ["y"], axis=-1)]
    out["embedding"] = model("emb", embed, [("ids", TP.INT64, ["N", 6])], [("y", F)], [("table", w(rng, 50, 8))])
    # MatMul(q, kT) [* or / scalar] -> Softmax(-1) -> MatMul(., v): irc.AttentionChain.
    for key, step, shapes in (("attn_chain_mul", "Mul", ([2, 3, 5, 4], [2, 3, 7, 4], [2, 3, 7, 6])),
                              ("attn_chain_div", "Div", (["N", 2, 9, 8], ["N", 2, 9, 8], ["N", 2, 9, 8])),
                              ("attn_chain_plain", None, ([4, 6, 3], [4, 5, 3], [4, 5, 2]))):
        rank = len(shapes[0])
        nodes = [node("Transpose", ["k"], ["kt"], perm=list(range(rank - 2)) + [rank - 1, rank - 2]),
                 node("MatMul", ["q", "kt"], ["s"])]
        if step:
            nodes.append(node(step, ["s", "scale"], ["s2"]))
        nodes += [node("Softmax", ["s2" if step else "s"], ["p"], axis=-1), node("MatMul", ["p", "v"], ["y"])]
        inits = [("scale", np.float32(0.35 if step == "Mul" else 4.0))] if step else []
        out[key] = model(key, nodes, [("q", F, shapes[0]), ("k", F, shapes[1]), ("v", F, shapes[2])], [("y", F)], inits)
    # An embedding feeding a Conv1D: folded into one table (irc.EmbedConv), the Relu and the
    # ReduceMax over positions absorbed when present; 16-channel and odd channel counts.
    for key, (o, stride, dil, pads, relu, reduce) in {
            "embed_conv_relu_max": (32, 1, 1, [1, 1], True, True),
            "embed_conv_strided": (5, 2, 2, [2, 0], False, False),
            "embed_conv_max_odd": (7, 1, 1, [0, 0], True, True),
            "embed_conv_relu": (16, 1, 1, [1, 2], True, False)}.items():
        nodes = [node("Gather", ["table", "ids"], ["e"]), node("Transpose", ["e"], ["t"], perm=[0, 2, 1]),
                 node("Conv", ["t", "cw", "cb"], ["c" if relu or reduce else "y"], kernel_shape=[3], strides=[stride],
                      dilations=[dil], pads=pads)]
        last = "c"
        if relu:
            nodes.append(node("Relu", ["c"], ["r" if reduce else "y"]))
            last = "r"
        if reduce:
            nodes.append(node("ReduceMax", [last], ["y"], axes=[2], keepdims=0))
        out[key] = model(key, nodes, [("ids", TP.INT64, ["N", 9])], [("y", F)],
                         [("table", w(rng, 40, 6)), ("cw", w(rng, o, 6, 3)), ("cb", w(rng, o))])
    return out


def _rnn(name: str, op: str, inputs, inits, hidden: int, **attrs) -> ModelProto:
    names = ["x", "w", "r"] + [n for n in ("b", "lens", "h0", "c0", "p") if n in attrs.pop("use", ())]
    slots = {"LSTM": ["x", "w", "r", "b", "lens", "h0", "c0", "p"], "GRU": ["x", "w", "r", "b", "lens", "h0"],
             "RNN": ["x", "w", "r", "b", "lens", "h0"]}[op]
    ins = [n if n in names else "" for n in slots]
    while ins and ins[-1] == "":
        ins.pop()
    outs = ["y", "yh"] + (["yc"] if op == "LSTM" else [])
    n = node(op, ins, outs, hidden_size=hidden, **attrs)
    return model(name, [n], inputs, [(o, F) for o in outs], inits)


def _rnn_family(rng) -> dict[str, ModelProto]:
    out = {}
    seq, batch, inp, hid = 5, 2, 4, 3

    def weights(gates: int, dirs: int, hidden: int = hid, size: int = inp):
        return [("w", w(rng, dirs, gates * hidden, size) * 0.5), ("r", w(rng, dirs, gates * hidden, hidden) * 0.5),
                ("b", w(rng, dirs, 2 * gates * hidden) * 0.5)]

    x = ("x", F, [seq, batch, inp])
    out["lstm_forward"] = _rnn("l1", "LSTM", [x], weights(4, 1), hid, use=("b",))
    out["lstm_bidir_full"] = _rnn(
        "l2", "LSTM", [x, ("h0", F, [2, batch, hid]), ("c0", F, [2, batch, hid])],
        weights(4, 2) + [("p", w(rng, 2, 3 * hid)), ("lens", np.array([5, 3], np.int32))], hid,
        direction="bidirectional", use=("b", "lens", "h0", "c0", "p"))
    out["lstm_reverse_nobias"] = _rnn("l3", "LSTM", [x], weights(4, 1)[:2], hid, direction="reverse")
    out["lstm_wide_b1"] = _rnn("l5", "LSTM", [("x", F, [9, 1, 24])], weights(4, 1, 40, 24), 40, use=("b",))
    # Batch 1 takes the fused step (units in groups of 16, runtime/rnn.rs `lstm_fused`): 19
    # units (one full group and a masked one), both directions, peepholes, states, a length.
    out["lstm_bidir_b1_odd"] = _rnn(
        "l6", "LSTM", [("x", F, [7, 1, 5]), ("h0", F, [2, 1, 19]), ("c0", F, [2, 1, 19])],
        weights(4, 2, 19, 5) + [("p", w(rng, 2, 3 * 19) * 0.5), ("lens", np.array([6], np.int32))], 19,
        direction="bidirectional", use=("b", "lens", "h0", "c0", "p"))
    for lbr in (0, 1):
        out[f"gru_lbr{lbr}"] = _rnn(f"g{lbr}", "GRU", [x, ("h0", F, [1, batch, hid])], weights(3, 1), hid,
                                    linear_before_reset=lbr, use=("b", "h0"))
    out["gru_bidir_lens"] = _rnn("g2", "GRU", [x], weights(3, 2) + [("lens", np.array([2, 5], np.int32))], hid,
                                 direction="bidirectional", use=("b", "lens"))
    out["rnn_forward"] = _rnn("r1", "RNN", [x], weights(1, 1), hid, use=("b",))
    # An embedding feeding the layer: the emitter folds W into the table (rows of E @ W^T + b).
    for key, op, gates, dirs, ids, attrs in (
            ("lstm_embed", "LSTM", 4, 1, ["N", 6], {}),
            ("gru_embed_bidir_b1", "GRU", 3, 2, [1, 7], {"direction": "bidirectional"}),
            ("rnn_embed_reverse", "RNN", 1, 1, [2, 5], {"direction": "reverse"})):
        outs = ["y", "yh"] + (["yc"] if op == "LSTM" else [])
        nodes = [node("Gather", ["table", "ids"], ["e"]), node("Transpose", ["e"], ["x"], perm=[1, 0, 2]),
                 node(op, ["x", "w", "r", "b"], outs, hidden_size=hid, **attrs)]
        out[key] = model(key, nodes, [("ids", TP.INT64, ids)], [(o, F) for o in outs],
                         [("table", w(rng, 30, inp))] + weights(gates, dirs))
    return out


def build() -> dict[str, dict[str, ModelProto]]:
    """family -> {key: model}."""
    rng = np.random.default_rng(11)
    return {"irc_seq": _irc_family(rng), "seq_fast": _seq_fast_family(rng), "rnn": _rnn_family(rng)}
