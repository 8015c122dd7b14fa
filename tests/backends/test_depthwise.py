"""Depthwise 3x3 convolutions read straight from the unpadded input (`conv_direct`'s
`dw_plane_avx512`: edge columns through masked loads, rows outside the plane read as zeros,
stride 2 split into even and odd columns in registers), alone and fused into the pointwise
layer after them (`rt::depthwise_pointwise`, in bands of rows): against onnxruntime with 1
and 2 threads, and 2 threads bit for bit equal to 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from .conftest import needs_cargo
from .thread_runs import assert_same_bits, run_per_thread_count


def _depthwise(name: str, c: int, h: int, w: int, seed: int, act: str | None = "Clip", bias: bool = True,
               **attrs) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.standard_normal((c, 1, 3, 3)) / 3).astype(np.float32), "w"),
             numpy_helper.from_array((rng.standard_normal(c) * 0.1).astype(np.float32), "b")]
    if not bias:
        inits.pop()
    nodes = [helper.make_node("Conv", ["x", "w", "b"] if bias else ["x", "w"], ["h" if act else "y"], group=c, **attrs)]
    if act == "Clip":
        inits += [numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
                  numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
        nodes.append(helper.make_node("Clip", ["h", "lo", "hi"], ["y"]))
    elif act is not None:
        nodes.append(helper.make_node(act, ["h"], ["y"]))
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TP.FLOAT, ["N", c, h, w])],
                              [helper.make_tensor_value_info("y", TP.FLOAT, None)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@needs_cargo
def test_depthwise_unpadded_match_onnxruntime_and_one_thread(tmp_path: Path, monkeypatch):
    from irc.oracle import random_inputs

    s2 = {"strides": [2, 2]}
    p1 = {"pads": [1, 1, 1, 1]}
    # (channels, height, width, activation, attrs, batch): stride 1 and 2, mobilenet-like
    # widths (a 16-column tile, a masked tail), odd sizes, widths below one vector (1, 5, 7),
    # a single row, channels not a multiple of 16, no / fused / separate activation, pads 0,
    # 2 and asymmetric, a batch of 2, and layers large enough to split over 2 threads.
    specs = {
        "dw_s1_56": (20, 56, 56, "Clip", p1, 1),
        "dw_s2_56": (20, 56, 56, "Clip", {**p1, **s2}, 1),
        "dw_s1_odd": (37, 29, 31, "Relu", p1, 1),
        "dw_s2_odd": (37, 29, 31, None, {**p1, **s2}, 1),
        "dw_s2_odd2": (9, 30, 35, "Clip", {**p1, **s2}, 2),
        "dw_s1_7": (19, 7, 7, "Clip", p1, 1),
        "dw_s2_14": (19, 14, 14, "Relu", {**p1, **s2}, 1),
        "dw_small": (5, 3, 5, "Sigmoid", p1, 2),
        "dw_s2_small": (5, 6, 5, "Clip", {**p1, **s2}, 1),
        "dw_w1": (3, 9, 1, None, p1, 1),
        "dw_h1": (3, 1, 23, "Relu", {**p1, **s2}, 1),
        "dw_pad0": (11, 17, 25, "Clip", {}, 1),
        "dw_pad2": (11, 17, 25, None, {"pads": [2, 2, 2, 2], **s2}, 1),
        "dw_asym": (13, 18, 21, "Clip", {"pads": [1, 0, 0, 1]}, 1),
        "dw_asym_s2": (13, 19, 40, "Relu", {"pads": [0, 1, 1, 0], **s2}, 1),
        # Stride 2 with more than 8 output columns (`dwv_tile`, 16-float vectors in tiles of
        # 2): 9 to 16 columns (one masked vector), 17-32 (two), whole unmasked tiles with a
        # tail of one or two vectors, a tile ending exactly at the row's end (pads 0, width
        # 67: columns 0..64 unmasked, the next column in range), pads 2, asymmetric pads,
        # no bias, a batch of 2.
        "dw2_9": (6, 17, 17, "Clip", {**p1, **s2}, 1),
        "dw2_16": (7, 11, 32, "Relu", {**p1, **s2}, 2),
        "dw2_25": (5, 13, 49, None, {**p1, **s2}, 1),
        "dw2_56": (9, 23, 112, "Clip", {**p1, **s2}, 1),
        "dw2_edge": (4, 9, 67, "Clip", {**s2}, 1),
        "dw2_pad2": (6, 15, 75, "Relu", {"pads": [2, 2, 2, 2], **s2}, 2),
        "dw2_asym": (5, 21, 83, None, {"pads": [1, 0, 0, 1], **s2}, 1),
        "dw2_nobias": (8, 27, 97, "Clip", {**p1, **s2, "bias": False}, 2),
        # Stride 1, pads 1, rows of at most 16 columns (`dwr_body`: one vector per row, 16
        # floats for 9-16 columns, 8 up to 8): mobilenet's 14x14 (512 channels: splits over
        # 2 threads) and 7x7, 16 and 9 columns, 8 and 1, tiles of 7 rows with a short last
        # one, channels not a multiple of 16, no bias, Clip / Relu / none, batches of 2; 17
        # columns stay on the old kernel.
        "dwr_14": (37, 14, 14, "Clip", p1, 2),
        "dwr_512": (512, 14, 14, "Clip", p1, 1),
        "dwr_7": (21, 7, 7, "Relu", p1, 1),
        "dwr_7b": (1024, 7, 7, "Clip", p1, 2),
        "dwr_16": (6, 16, 16, None, p1, 1),
        "dwr_9": (5, 12, 9, "Clip", {**p1, "bias": False}, 1),
        "dwr_8": (7, 10, 8, "Relu", {**p1, "bias": False}, 2),
        "dwr_tall": (3, 40, 5, "Clip", p1, 2),
        "dwr_17": (4, 9, 17, "Clip", p1, 1),
    }
    cases = {key: (_depthwise(key, c, h, w, seed, act, **attrs),
                   lambda g, batch=batch: random_inputs(g, batch=batch, seed=3))
             for seed, (key, (c, h, w, act, attrs, batch)) in enumerate(specs.items())}
    outputs = run_per_thread_count(tmp_path, monkeypatch, "irc_depthwise", cases)
    assert_same_bits(outputs, cases)


def _dw_pw(name: str, c: int, m: int, h: int, w: int, stride: int, seed: int, extra_reader: bool = False) -> onnx.ModelProto:
    """Relu -> depthwise 3x3 + Clip -> pointwise 1x1 + Relu (the pair `rt::depthwise_pointwise`
    takes, its input an intermediate it drops); with ``extra_reader`` the depthwise input is
    also read by another op (kept alive)."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.standard_normal((c, 1, 3, 3)) / 3).astype(np.float32), "wd"),
             numpy_helper.from_array((rng.standard_normal(c) * 0.1).astype(np.float32), "bd"),
             numpy_helper.from_array((rng.standard_normal((m, c, 1, 1)) / np.sqrt(c)).astype(np.float32), "wp"),
             numpy_helper.from_array((rng.standard_normal(m) * 0.1).astype(np.float32), "bp"),
             numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
             numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
    nodes = [helper.make_node("Relu", ["x"], ["xr"]),
             helper.make_node("Conv", ["xr", "wd", "bd"], ["d"], group=c, pads=[1, 1, 1, 1], strides=[stride, stride]),
             helper.make_node("Clip", ["d", "lo", "hi"], ["dc"]),
             helper.make_node("Conv", ["dc", "wp", "bp"], ["p"]),
             helper.make_node("Relu", ["p"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TP.FLOAT, None)]
    if extra_reader:
        nodes.append(helper.make_node("ReduceMean", ["xr"], ["xm"], axes=[2, 3], keepdims=0))
        outputs.append(helper.make_tensor_value_info("xm", TP.FLOAT, None))
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TP.FLOAT, ["N", c, h, w])], outputs,
                              initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@needs_cargo
def test_depthwise_pointwise_bands_match_onnxruntime_and_one_thread(tmp_path: Path, monkeypatch):
    from irc.backends.rust.emitter import emit_model
    from irc.backends.rust.prepare import prepare
    from irc.ir.onnx_io import from_onnx
    from irc.oracle import random_inputs

    # (channels, out channels, height, width, stride, batch, extra reader): several bands
    # (the last one short), stride 2, odd sizes, channels not a multiple of 16, a batch of 2,
    # a 2-thread split of the pair (falls back to the two layers) and a depthwise input read
    # again after the pair.
    specs = {"dwpw_s1": (20, 24, 61, 59, 1, 1, False), "dwpw_s2": (37, 19, 57, 63, 2, 1, True),
             "dwpw_s2_wide": (70, 24, 90, 113, 2, 2, False),
             "dwpw_b2": (16, 40, 30, 33, 1, 2, False), "dwpw_big": (64, 96, 56, 56, 1, 1, False),
             # Rows of at most 16 columns (`dwr_body`) in bands: 14 and 7 columns in one band,
             # 16 columns in two bands (the second from row 128).
             "dwpw_14": (19, 21, 14, 14, 1, 2, False), "dwpw_7": (40, 48, 7, 7, 1, 1, False),
             "dwpw_narrow": (32, 24, 200, 16, 1, 1, False)}
    cases = {key: (_dw_pw(key, c, m, h, w, st, seed, extra), lambda g, batch=batch: random_inputs(g, batch=batch, seed=5))
             for seed, (key, (c, m, h, w, st, batch, extra)) in enumerate(specs.items())}
    for key, (model, _) in cases.items():
        source = emit_model(prepare(from_onnx(model)), "Fused")
        assert "rt::depthwise_pointwise(" in source.body, key
    outputs = run_per_thread_count(tmp_path, monkeypatch, "irc_dw_pw", cases)
    assert_same_bits(outputs, cases)
