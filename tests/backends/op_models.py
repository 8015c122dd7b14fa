"""Tiny ONNX models, one per op-family feature, with seeded feeds (built by the tests, never stored)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

F = TP.FLOAT
NP = {TP.FLOAT16: np.float16, TP.FLOAT: np.float32, TP.DOUBLE: np.float64, TP.INT64: np.int64, TP.INT32: np.int32,
      TP.BOOL: np.bool_, TP.UINT8: np.uint8, TP.INT8: np.int8}


def model(name, nodes, inputs, outputs, inits=(), opset=17):
    """A model from (name, elem_type, shape) inputs/outputs; outputs' shapes are left to inference."""
    g = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def feed(rng, t, shape):
    dt = NP[t]
    if t == TP.BOOL:
        return rng.random(shape) < 0.5
    if np.dtype(dt).kind in "iu":
        return rng.integers(0, 5, size=shape).astype(dt)
    return rng.standard_normal(shape).astype(dt)


def unary(op, t=F, shape=(2, 3, 4), opset=17, **attrs):
    return model(f"{op}", [helper.make_node(op, ["x"], ["y"], name=op.lower(), **attrs)],
                 [("x", t, list(shape))], [("y", t)], opset=opset)


def binary(op, ta=F, sa=(2, 3, 4), sb=(4,), tout=None, opset=17):
    return model(op, [helper.make_node(op, ["a", "b"], ["y"], name=op.lower())],
                 [("a", ta, list(sa)), ("b", ta, list(sb))], [("y", tout or ta)], opset=opset)


def w(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def build() -> dict[str, dict]:
    """family -> {key: onnx model}."""
    rng = np.random.default_rng(1)
    fam: dict[str, dict] = {k: {} for k in ("elementwise", "matmul", "conv", "pool", "norm", "reduce",
                                            "shape", "dtypes", "control")}
    e = fam["elementwise"]
    for op in ("Relu", "Sigmoid", "Tanh", "Exp", "Abs", "Neg", "Floor", "Sqrt", "Erf", "Softplus", "Sin"):
        e[op.lower()] = unary(op)
    e["gelu_tanh"] = unary("Gelu", opset=20, approximate="tanh")
    e["leaky_relu"] = unary("LeakyRelu", alpha=0.2)
    e["hard_sigmoid"] = unary("HardSigmoid")
    e["elu"] = unary("Elu", alpha=0.7)
    for op in ("Add", "Sub", "Mul", "Div", "Max", "Min"):
        e[f"{op.lower()}_bcast"] = binary(op, sa=(2, 1, 4), sb=(3, 1))
    e["pow"] = model("pow", [helper.make_node("Abs", ["a"], ["aa"]), helper.make_node("Pow", ["aa", "b"], ["y"])],
                     [("a", F, [2, 3]), ("b", F, [3])], [("y", F)])
    e["clip"] = model("clip", [helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], [("x", F, [3, 4])], [("y", F)],
                      [("lo", np.float32(-0.5)), ("hi", np.float32(0.5))])
    e["where_less"] = model("where", [helper.make_node("Less", ["a", "b"], ["c"]),
                                      helper.make_node("Where", ["c", "a", "b"], ["y"])],
                            [("a", F, [2, 3]), ("b", F, [1, 3])], [("y", F)])
    m = fam["matmul"]
    m["matmul_batched"] = binary("MatMul", sa=(2, 1, 3, 5), sb=(4, 5, 6))
    m["matmul_vec"] = binary("MatMul", sa=(5,), sb=(2, 5, 3))
    # Attention-style [B, H, S, D] x [B, H, S, D]^T: the transposed operand is a strided view.
    m["matmul_4d_transposed"] = model("mm4t", [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
                                               helper.make_node("MatMul", ["q", "kt"], ["y"])],
                                      [("q", F, [2, 3, 5, 4]), ("k", F, [2, 3, 6, 4])], [("y", F)])
    m["matmul_bcast_transposed"] = model("mmbt", [helper.make_node("Transpose", ["b"], ["bt"], perm=[1, 0]),
                                                  helper.make_node("MatMul", ["a", "bt"], ["y"])],
                                         [("a", F, [2, 3, 5, 4]), ("b", F, [6, 4])], [("y", F)])
    m["gemm_transb"] = model("gemm", [helper.make_node("Gemm", ["a", "w", "c"], ["y"], transB=1, alpha=0.5, beta=2.0)],
                             [("a", F, ["N", 6])], [("y", F)], [("w", w(rng, 4, 6)), ("c", w(rng, 4))])
    m["einsum_bij_bjk"] = model("einsum", [helper.make_node("Einsum", ["a", "b"], ["y"], equation="bij,bjk->bik")],
                                [("a", F, [2, 3, 4]), ("b", F, [2, 4, 5])], [("y", F)], opset=12)
    c = fam["conv"]
    c["conv2d_group_dil"] = model("conv", [helper.make_node("Conv", ["x", "w", "b"], ["y"], group=2, pads=[1, 2, 1, 0],
                                                            strides=[2, 1], dilations=[1, 2])],
                                  [("x", F, ["N", 4, 9, 8])], [("y", F)], [("w", w(rng, 6, 2, 3, 3)), ("b", w(rng, 6))])
    c["conv1d_same"] = model("conv1d", [helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2])],
                             [("x", F, [2, 3, 11])], [("y", F)], [("w", w(rng, 5, 3, 4))])
    c["conv3d"] = model("conv3d", [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 6)],
                        [("x", F, [1, 2, 4, 5, 3])], [("y", F)], [("w", w(rng, 3, 2, 3, 3, 3))])
    c["conv_transpose"] = model("convt", [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2],
                                                            pads=[1, 0, 0, 1], output_padding=[1, 0])],
                                [("x", F, [2, 3, 4, 5])], [("y", F)], [("w", w(rng, 3, 2, 3, 3)), ("b", w(rng, 2))])
    c["conv_transpose_group"] = model("convtg", [helper.make_node("ConvTranspose", ["x", "w"], ["y"], group=2,
                                                                  dilations=[2, 1])],
                                      [("x", F, [1, 4, 3, 3])], [("y", F)], [("w", w(rng, 4, 3, 2, 2))])
    p = fam["pool"]
    p["maxpool_ceil"] = unary("MaxPool", shape=(2, 3, 7, 7), kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    p["maxpool_pads_dil"] = unary("MaxPool", shape=(1, 2, 8, 8), kernel_shape=[2, 2], pads=[1, 1, 1, 1], dilations=[2, 2])
    p["maxpool1d_pads_ceil"] = unary("MaxPool", shape=(2, 3, 10), kernel_shape=[3], strides=[2], pads=[1, 2],
                                     ceil_mode=1)
    p["maxpool_2x2"] = unary("MaxPool", shape=(2, 3, 6, 8), kernel_shape=[2, 2], strides=[2, 2])
    p["maxpool_2x2_odd"] = unary("MaxPool", shape=(1, 3, 7, 9), kernel_shape=[2, 2], strides=[2, 2])
    p["maxpool_2x2_ceil"] = unary("MaxPool", shape=(1, 2, 7, 9), kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    p["maxpool_3x3_s2_pads"] = unary("MaxPool", shape=(1, 2, 11, 12), kernel_shape=[3, 3], strides=[2, 2],
                                     pads=[1, 1, 1, 1])
    # The rows of a window reduced first, then its columns (runtime/pool.rs): stride 1,
    # stride 3 with a non-square kernel and uneven pads, an odd-width stride-2 plane.
    p["maxpool_3x3_s1_pads"] = unary("MaxPool", shape=(2, 3, 9, 13), kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    p["maxpool_3x2_s3_pads"] = unary("MaxPool", shape=(1, 2, 10, 11), kernel_shape=[3, 2], strides=[3, 3],
                                     pads=[0, 1, 1, 0])
    p["maxpool_3x3_s2_odd"] = unary("MaxPool", shape=(1, 3, 30, 31), kernel_shape=[3, 3], strides=[2, 2],
                                    pads=[1, 1, 1, 1])
    p["avgpool_incl"] = unary("AveragePool", shape=(2, 2, 6, 6), kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              count_include_pad=1, strides=[2, 2])
    p["avgpool_excl"] = unary("AveragePool", shape=(2, 2, 6, 6), kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    p["avgpool1d_same"] = unary("AveragePool", shape=(2, 2, 9), kernel_shape=[4], auto_pad="SAME_LOWER", strides=[2])
    p["gap"] = unary("GlobalAveragePool", shape=(2, 3, 5, 4))
    p["gmp"] = unary("GlobalMaxPool", shape=(2, 3, 5, 4))
    p["lppool"] = unary("LpPool", shape=(1, 2, 5, 5), kernel_shape=[2, 2], p=2)
    n = fam["norm"]
    n["batchnorm"] = model("bn", [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)],
                           [("x", F, ["N", 3, 4, 4])], [("y", F)],
                           [("s", w(rng, 3)), ("b", w(rng, 3)), ("m", w(rng, 3)), ("v", np.abs(w(rng, 3)) + 0.5)])
    n["instancenorm"] = model("in", [helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"])],
                              [("x", F, [2, 3, 4, 5])], [("y", F)], [("s", w(rng, 3)), ("b", w(rng, 3))])
    n["layernorm"] = model("ln", [helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=-1)],
                           [("x", F, [2, 5, 8])], [("y", F)], [("s", w(rng, 8)), ("b", w(rng, 8))])
    n["lrn"] = unary("LRN", shape=(2, 5, 3, 3), size=3, alpha=0.001, beta=0.75, bias=1.0)
    r = fam["reduce"]
    r["reduce_mean"] = unary("ReduceMean", shape=(2, 3, 4), axes=[1, 2], keepdims=1)
    r["reduce_max"] = unary("ReduceMax", shape=(2, 3, 4), axes=[-1], keepdims=0)
    r["reduce_sum13"] = model("rsum", [helper.make_node("ReduceSum", ["x", "ax"], ["y"], keepdims=0)],
                              [("x", F, [2, 3, 4])], [("y", F)], [("ax", np.array([0, 2], np.int64))], opset=13)
    r["reduce_l2_all"] = unary("ReduceL2", shape=(2, 3))
    r["argmax"] = model("argmax", [helper.make_node("ArgMax", ["x"], ["y"], axis=1, keepdims=0)],
                        [("x", F, [3, 5])], [("y", TP.INT64)])
    r["softmax"] = unary("Softmax", shape=(2, 3, 5), axis=1)
    r["softmax_legacy"] = unary("Softmax", shape=(2, 3, 5), axis=1, opset=11)
    r["logsoftmax"] = unary("LogSoftmax", shape=(2, 7))
    r["topk"] = model("topk", [helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=1)],
                      [("x", F, [3, 6])], [("v", F), ("i", TP.INT64)], [("k", np.array([3], np.int64))])
    r["cumsum"] = model("cumsum", [helper.make_node("CumSum", ["x", "ax"], ["y"], exclusive=1, reverse=1)],
                        [("x", F, [3, 4])], [("y", F)], [("ax", np.array(1, np.int64))])
    s = fam["shape"]
    s["reshape_transpose"] = model("rt", [helper.make_node("Reshape", ["x", "sh"], ["r"]),
                                          helper.make_node("Transpose", ["r"], ["y"], perm=[2, 0, 1])],
                                   [("x", F, [2, 3, 4])], [("y", F)], [("sh", np.array([0, -1, 2], np.int64))])
    s["dynamic_reshape"] = model("dyn", [helper.make_node("Shape", ["x"], ["s"]),
                                         helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
                                         helper.make_node("Unsqueeze", ["n", "ax"], ["n1"]),
                                         helper.make_node("Concat", ["n1", "m1"], ["shape"], axis=0),
                                         helper.make_node("Reshape", ["x", "shape"], ["y"])],
                                 [("x", F, ["N", 3, 4])], [("y", F)],
                                 [("zero", np.array(0, np.int64)), ("ax", np.array([0], np.int64)),
                                  ("m1", np.array([-1], np.int64))])
    s["concat_split"] = model("cs", [helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
                                     helper.make_node("Split", ["c", "sp"], ["y0", "y1", "y2"], axis=1)],
                              [("a", F, [2, 3]), ("b", F, [2, 4])], [("y0", F), ("y1", F), ("y2", F)],
                              [("sp", np.array([2, 2, 3], np.int64))])
    s["slice_neg_step"] = model("sl", [helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
                                [("x", F, [5, 6])], [("y", F)],
                                [("st", np.array([-1, 1], np.int64)), ("en", np.array([-100, 6], np.int64)),
                                 ("ax", np.array([0, 1], np.int64)), ("sp", np.array([-2, 2], np.int64))])
    s["gather_axis1"] = model("ga", [helper.make_node("Gather", ["x", "i"], ["y"], axis=1)],
                              [("x", F, [3, 5])], [("y", F)], [("i", np.array([[0, -1], [2, 2]], np.int64))])
    s["gather_elements"] = model("ge", [helper.make_node("GatherElements", ["x", "i"], ["y"], axis=0)],
                                 [("x", F, [3, 3])], [("y", F)], [("i", np.array([[1, 2, 0], [2, 0, 0]], np.int64))])
    s["pad_reflect"] = model("pad", [helper.make_node("Pad", ["x", "p"], ["y"], mode="reflect")],
                             [("x", F, [2, 3, 4])], [("y", F)], [("p", np.array([0, 1, 2, 0, 1, 1], np.int64))])
    s["expand_tile"] = model("et", [helper.make_node("Expand", ["x", "sh"], ["e"]),
                                    helper.make_node("Tile", ["e", "r"], ["y"])],
                             [("x", F, [3, 1])], [("y", F)],
                             [("sh", np.array([2, 3, 4], np.int64)), ("r", np.array([1, 2, 1], np.int64))])
    s["squeeze_unsqueeze_flatten"] = model("suf", [helper.make_node("Unsqueeze", ["x", "a"], ["u"]),
                                                   helper.make_node("Squeeze", ["u", "b"], ["q"]),
                                                   helper.make_node("Flatten", ["q"], ["y"], axis=2)],
                                           [("x", F, [2, 1, 3, 4])], [("y", F)],
                                           [("a", np.array([0, 3], np.int64)), ("b", np.array([2], np.int64))])
    s["depth_to_space"] = unary("DepthToSpace", shape=(1, 8, 2, 3), blocksize=2, mode="CRD")
    s["scatter_nd"] = model("snd", [helper.make_node("ScatterND", ["x", "i", "u"], ["y"])],
                            [("x", F, [4, 3])], [("y", F)],
                            [("i", np.array([[1], [3]], np.int64)), ("u", w(rng, 2, 3))])
    d = fam["dtypes"]
    d["add_i64"] = binary("Add", ta=TP.INT64, sa=(2, 3), sb=(3,))
    d["matmul_i32"] = binary("MatMul", ta=TP.INT32, sa=(2, 3), sb=(3, 2))
    d["matmul_softmax_f64"] = model("mmd", [helper.make_node("MatMul", ["x", "w"], ["m"]),
                                            helper.make_node("Softmax", ["m"], ["y"])],
                                    [("x", TP.DOUBLE, [2, 4])], [("y", TP.DOUBLE)], [("w", w(rng, 4, 3, dtype=np.float64))])
    d["add_f16"] = binary("Add", ta=TP.FLOAT16, sa=(2, 3), sb=(3,))
    d["and_bool"] = binary("And", ta=TP.BOOL, sa=(2, 3), sb=(2, 3))
    d["cast_u8_f32"] = model("cast", [helper.make_node("Cast", ["x"], ["y"], to=TP.FLOAT)],
                             [("x", TP.UINT8, [2, 3])], [("y", F)])
    d["cast_f32_i8"] = model("cast2", [helper.make_node("Mul", ["x", "k"], ["m"]),
                                       helper.make_node("Cast", ["m"], ["y"], to=TP.INT8)],
                             [("x", F, [2, 3])], [("y", TP.INT8)], [("k", np.float32(10))])
    d["equal_i64"] = binary("Equal", ta=TP.INT64, sa=(2, 3), sb=(1, 3), tout=TP.BOOL)
    _control(fam["control"], rng)
    from .fused_models import build as fused_build  # irc-domain fusions (imports this module)

    fam["irc_fused"] = fused_build()
    # Text/sequence fast paths, irc.LayerNormalization / Gelu / Elementwise_*, RNNs.
    from .seq_models import build as seq_build

    fam.update(seq_build())
    return fam


def _control(ctl: dict, rng) -> None:
    """If and Loop models: subgraphs that read outer values and carry state."""
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", F, None)])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", F, None)])
    ctl["if_sign_of_sum"] = model(
        "if", [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
               helper.make_node("Greater", ["s", "zero"], ["c"]),
               helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)],
        [("x", F, [2, 3])], [("y", F)], [("zero", np.float32(0))])
    body = helper.make_graph(
        [helper.make_node("Mul", ["acc_in", "w"], ["m"]), helper.make_node("Add", ["m", "x"], ["acc_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Tanh", ["acc_out"], ["scan"])],
        "body", [helper.make_tensor_value_info("i", TP.INT64, []), helper.make_tensor_value_info("cond_in", TP.BOOL, []),
                 helper.make_tensor_value_info("acc_in", F, [2, 3])],
        [helper.make_tensor_value_info("cond_out", TP.BOOL, []), helper.make_tensor_value_info("acc_out", F, [2, 3]),
         helper.make_tensor_value_info("scan", F, [2, 3])])
    ctl["loop_recurrence"] = model(
        "loop", [helper.make_node("Loop", ["trips", "", "x"], ["final", "steps"], body=body)],
        [("x", F, [2, 3])], [("final", F), ("steps", F)],
        [("trips", np.array(4, np.int64)), ("w", w(rng, 3))])
    ctl["einsum_ellipsis"] = model("ein", [helper.make_node("Einsum", ["a", "b"], ["y"], equation="...ij,...jk->...ik")],
                                   [("a", F, [2, 3, 4]), ("b", F, [2, 4, 5])], [("y", F)], opset=12)
