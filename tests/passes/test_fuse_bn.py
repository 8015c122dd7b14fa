"""BatchNorm and affine folding into Conv, ConvTranspose, Gemm, MatMul; Pad into Conv."""

import numpy as np
import pytest
from onnx import helper
from pass_helpers import F, assert_same, model, ops, optimized, rand


def _bn_inits(c, seed=0, extreme=False):
    rng = np.random.default_rng(seed)
    if extreme:  # tiny variance, large mean: the worst case for a float32 fold
        var = np.full(c, 1e-8, np.float32) * rng.uniform(0.5, 2, c).astype(np.float32)
        mean = (rng.standard_normal(c) * 1e3).astype(np.float32)
    else:
        var = rng.uniform(0.5, 2, c).astype(np.float32)
        mean = rng.standard_normal(c).astype(np.float32)
    return {"gamma": rng.uniform(0.5, 1.5, c).astype(np.float32),
            "beta": rng.standard_normal(c).astype(np.float32), "mean": mean, "var": var}


def _bn(inp, out, eps=1e-5):
    return helper.make_node("BatchNormalization", [inp, "gamma", "beta", "mean", "var"], [out], epsilon=eps)


def _conv_bn_model(extreme):
    c = 8
    inits = {"w": rand(c, 4, 3, 3, seed=1), "b": rand(c, seed=2), **_bn_inits(c, 3, extreme)}
    if extreme:
        inits["b"] = inits["mean"] + rand(c, seed=4) * 1e-3  # conv output sits near the mean
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), _bn("c", "y", 1e-9)]
    return model(nodes, [("x", F, [2, 4, 6, 6])], [("y", F, [2, 8, 6, 6])], inits)


def test_conv_bn_fold():
    m = _conv_bn_model(False)
    _, after = optimized(m, passes=["fuse_bn", "dce"])
    assert ops(after) == ["Conv"]
    assert_same(m, after)


def _conv2d_f64(x, w, b, pad):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, _, h, wd = x.shape
    k = w.shape[2]
    out = np.zeros((n, w.shape[0], h - k + 1, wd - k + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = np.einsum("nchw,ochw->no", x[:, :, i:i + k, j:j + k], w)
    return out + b[None, :, None, None]


def test_conv_bn_fold_with_extreme_statistics_is_within_1e5_relative():
    """Tiny variance, large mean: the folded float32 model matches the unfolded model
    computed exactly (float64) within 1e-5 relative. (The unfolded float32 model itself
    loses digits here: (conv - mean) cancels catastrophically.)"""
    import onnx.numpy_helper as nh

    from irc.oracle import run

    m = _conv_bn_model(True)
    _, after = optimized(m)
    assert ops(after) == ["Conv"]
    p = {t.name: nh.to_array(t).astype(np.float64) for t in m.graph.initializer}
    x = rand(2, 4, 6, 6, seed=9)
    conv = _conv2d_f64(x.astype(np.float64), p["w"], p["b"], 1)
    shape = (1, -1, 1, 1)
    want = ((conv - p["mean"].reshape(shape)) / np.sqrt(p["var"].reshape(shape) + 1e-9)
            * p["gamma"].reshape(shape) + p["beta"].reshape(shape))
    got = run(after, {"x": x})["y"].astype(np.float64)
    assert np.max(np.abs(got - want)) <= 1e-5 * np.abs(want).max()


def test_convtranspose_bn_fold_with_groups():
    c_in, groups, per = 4, 2, 3
    inits = {"w": rand(c_in, per, 3, 3, seed=1), **_bn_inits(groups * per, 5)}
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["c"], group=groups), _bn("c", "y")]
    m = model(nodes, [("x", F, [1, c_in, 5, 5])], [("y", F, [1, groups * per, 7, 7])], inits)
    _, after = optimized(m)
    assert ops(after) == ["ConvTranspose"]
    assert_same(m, after)


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_bn_fold(trans_b):
    w = rand(5, 6, seed=1) if trans_b else rand(6, 5, seed=1)
    inits = {"w": w, "c": rand(5, seed=2), **_bn_inits(5, 6)}
    nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["g"], transB=trans_b, alpha=0.5, beta=2.0),
             _bn("g", "y")]
    m = model(nodes, [("x", F, [3, 6])], [("y", F, [3, 5])], inits)
    _, after = optimized(m)
    assert ops(after) == ["Gemm"]
    assert_same(m, after)


def test_matmul_bn_fold_ends_as_gemm():
    inits = {"w": rand(6, 5, seed=1), **_bn_inits(5, 6)}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["g"]), _bn("g", "y")]
    m = model(nodes, [("x", F, [3, 6])], [("y", F, [3, 5])], inits)
    _, after = optimized(m)
    assert ops(after) == ["Gemm"]
    assert_same(m, after)


def test_conv_mul_add_and_bn_mul_add_fold():
    c = 4
    inits = {"w": rand(c, 3, 1, 1, seed=1), "s": rand(1, c, 1, 1, seed=2), "t": rand(c, 1, 1, seed=3),
             **_bn_inits(c, 4)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"]),
             helper.make_node("Mul", ["a", "s"], ["b"]),
             helper.make_node("Add", ["t", "b"], ["d"]),
             helper.make_node("Relu", ["d"], ["r"]),
             _bn("r", "e"),
             helper.make_node("Mul", ["e", "s"], ["f"]),
             helper.make_node("Add", ["f", "t"], ["y"])]
    m = model(nodes, [("x", F, [2, 3, 4, 4])], [("y", F, [2, c, 4, 4])], inits)
    _, after = optimized(m)
    assert ops(after) == ["Conv", "Relu", "BatchNormalization"]
    assert_same(m, after)


def test_pad_folds_into_conv():
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"]),
             helper.make_node("Conv", ["p", "w"], ["y"], pads=[1, 0, 0, 1])]
    inits = {"pads": np.array([0, 0, 1, 2, 0, 0, 3, 0], np.int64), "w": rand(2, 3, 3, 3, seed=1)}
    m = model(nodes, [("x", F, [1, 3, 6, 6])], [("y", F, [1, 2, 9, 7])], inits)
    g, after = optimized(m)
    assert ops(after) == ["Conv"]
    assert list(g.ops[0].attr("pads")) == [2, 2, 3, 1]
    assert_same(m, after)


def test_reflect_pad_is_not_folded():
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], mode="reflect"),
             helper.make_node("Conv", ["p", "w"], ["y"])]
    inits = {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "w": rand(2, 3, 3, 3, seed=1)}
    m = model(nodes, [("x", F, [1, 3, 6, 6])], [("y", F, [1, 2, 6, 6])], inits)
    _, after = optimized(m)
    assert ops(after) == ["Pad", "Conv"]
