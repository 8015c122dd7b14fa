"""Dense layers large enough for the runtime to split over threads (a batch-1 GEMV and a
batch-8 GEMM, by output columns): with RAYON_NUM_THREADS=2 they match onnxruntime and,
bit for bit, the same crate run with one thread (a column split never reorders a sum).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from .conftest import needs_cargo
from .thread_runs import assert_same_bits, run_per_thread_count


def _dense(name: str, k: int, n: int, seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    b = (rng.standard_normal(n) * 0.1).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        name, [helper.make_tensor_value_info("x", TP.FLOAT, ["N", k])],
        [helper.make_tensor_value_info("y", TP.FLOAT, ["N", n])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@needs_cargo
def test_split_dense_layers_match_onnxruntime_and_one_thread(tmp_path: Path, monkeypatch):
    from irc.oracle import random_inputs

    # (batch, k, n): 17 MB of weights at batch 1 (odd width; GEMVs split from 32 Ki weights),
    # and a batch-8 product of 36 MFLOP (split by columns from 8 MFLOP), see runtime/gemm.rs;
    # short products (at most 8 rows) of 3.8 and 4.2 MFLOP, split by columns from 2 MFLOP
    # (SHORT_SPLIT_WORK; below the batch-parallel forward's 4 MFLOP chunks), odd m, n and k.
    # Batch-1 GEMVs of mlp's size (784x256) and just above the 32 Ki-weight split (odd n, k).
    specs = {"case_thr_gemv": (1, 16384, 264), "case_thr_short": (8, 2048, 1100),
             "case_thr_mlp1": (1, 784, 256), "case_thr_gemv33k": (1, 257, 130),
             "case_thr_mlp8": (8, 784, 300), "case_thr_odd5": (5, 999, 421)}
    cases = {key: (_dense(key, k, n, seed), lambda g, batch=batch: random_inputs(g, batch=batch, seed=5))
             for seed, (key, (batch, k, n)) in enumerate(specs.items())}
    outputs = run_per_thread_count(tmp_path, monkeypatch, "irc_threads", cases)
    assert_same_bits(outputs, cases)


def _conv_pool(name: str, c: int, m: int, h: int, w: int, seed: int, k: int = 3, stride: int = 1) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    wt = (rng.standard_normal((m, c, k, k)) / np.sqrt(k * k * c)).astype(np.float32)
    b = (rng.standard_normal(m) * 0.1).astype(np.float32)
    p = k // 2
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["h"], pads=[p, p, p, p], strides=[stride, stride]),
         helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
         helper.make_node("Conv", ["p", "w2", "b2"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2])],
        name, [helper.make_tensor_value_info("x", TP.FLOAT, ["N", c, h, w])],
        [helper.make_tensor_value_info("y", TP.FLOAT, None)],
        initializer=[numpy_helper.from_array(wt, "w"), numpy_helper.from_array(b, "b"),
                     numpy_helper.from_array((rng.standard_normal((m + 3, m, 3, 3)) / np.sqrt(9 * m)).astype(np.float32), "w2"),
                     numpy_helper.from_array((rng.standard_normal(m + 3) * 0.1).astype(np.float32), "b2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@needs_cargo
def test_split_conv_pool_batch1_match_onnxruntime_and_one_thread(tmp_path: Path, monkeypatch):
    """Batch-1 convolutions and a 3x3/s2 max-pool split over 2 threads (channel counts that
    are not multiples of the kernels' blocks, odd planes), several splits in a row (the pool
    thread spins between them, runtime/par.rs): equal to onnxruntime and, bit for bit, to
    one thread."""
    from irc.oracle import random_inputs

    # 5 -> 70 channels at 61x59 (direct conv, 9 blocks of 8: 23 MFLOP, split), pool 70x31x30
    # (split), then 70 -> 73 channels stride 2; 3 -> 37 at 29x31 (stays on one thread); a
    # 7x7/s2 stem 3 -> 66 at 117x115 (packed rows, 59x58 out: 88 MFLOP in row bands); 64 -> 40
    # at 29x31 (Winograd, tile blocks split over the threads); 96 -> 80 at 15x14 (Winograd
    # F(4x4), 16 tiles in one block: its phases split over the threads); 256 -> 64 at 7x7
    # (Winograd F(2x2), one block of 16 tiles, split the same way).
    specs = {"case_thr_convpool": (5, 70, 61, 59), "case_thr_small": (3, 37, 29, 31),
             "case_thr_stem": (3, 66, 117, 115, 7, 2), "case_thr_wino": (64, 40, 29, 31),
             "case_thr_wino1": (96, 80, 15, 14), "case_thr_wino7": (256, 64, 7, 7)}
    cases = {key: (_conv_pool(key, *spec[:4], seed, *spec[4:]), lambda g: random_inputs(g, batch=1, seed=7))
             for seed, (key, spec) in enumerate(specs.items())}
    outputs = run_per_thread_count(tmp_path, monkeypatch, "irc_threads_conv", cases)
    assert_same_bits(outputs, cases)


def _blocked_depthwise(name: str, c: int, m: int, h: int, w: int, dw: int, seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    wt = (rng.standard_normal((m, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    wd = (rng.standard_normal((dw, 1, 3, 3)) / 3).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["h"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["h"], ["y"]),
         helper.make_node("Conv", ["z", "wd", "bd"], ["d"], pads=[1, 1, 1, 1], group=dw),
         helper.make_node("Clip", ["d", "lo", "hi"], ["y2"])],
        name, [helper.make_tensor_value_info("x", TP.FLOAT, ["N", c, h, w]),
               helper.make_tensor_value_info("z", TP.FLOAT, ["N", dw, 13, 15])],
        [helper.make_tensor_value_info("y", TP.FLOAT, None), helper.make_tensor_value_info("y2", TP.FLOAT, None)],
        initializer=[numpy_helper.from_array(wt, "w"),
                     numpy_helper.from_array((rng.standard_normal(m) * 0.1).astype(np.float32), "b"),
                     numpy_helper.from_array(wd, "wd"),
                     numpy_helper.from_array((rng.standard_normal(dw) * 0.1).astype(np.float32), "bd"),
                     numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
                     numpy_helper.from_array(np.array(6.0, np.float32), "hi")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _pointwise(name: str, c: int, m: int, h: int, w: int, seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    wt = (rng.standard_normal((m, c, 1, 1)) / np.sqrt(c)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        name, [helper.make_tensor_value_info("x", TP.FLOAT, ["N", c, h, w])],
        [helper.make_tensor_value_info("y", TP.FLOAT, None)],
        initializer=[numpy_helper.from_array(wt, "w"),
                     numpy_helper.from_array((rng.standard_normal(m) * 0.1).astype(np.float32), "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@needs_cargo
def test_split_blocked_fill_and_depthwise_batch1_match_one_thread(tmp_path: Path, monkeypatch):
    """Batch 1 on 2 threads: a 3x3 conv of 64 -> 67 channels at 61x59 (the blocked kernel:
    its padded copy and its output zeroing split by channel, then its channel blocks), and
    a 3x3 depthwise conv of 509 channels at 13x15 (split by channel from ~2 MFLOP): equal to
    onnxruntime and, bit for bit, to one thread."""
    from irc.oracle import random_inputs

    cases = {"case_thr_blocked_dw": (_blocked_depthwise("case_thr_blocked_dw", 64, 67, 61, 59, 509, 3),
                                     lambda g: random_inputs(g, batch=1, seed=11)),
             # Pointwise 512 -> 161 at 7x7 (`conv_blocked` in place, 6 blocks split over the
             # threads, each prefetching the next block's weights).
             "case_thr_blocked_pw7": (_pointwise("case_thr_blocked_pw7", 512, 161, 7, 7, 4),
                                      lambda g: random_inputs(g, batch=1, seed=12))}
    outputs = run_per_thread_count(tmp_path, monkeypatch, "irc_threads_blocked", cases)
    assert_same_bits(outputs, cases)


def _lstm(name: str, seq: int, batch: int, inp: int, hid: int, seed: int, direction: str = "forward",
          peep: bool = False, lens: int | None = None, embed: bool = False) -> onnx.ModelProto:
    """One LSTM layer (`embed`: fed by Gather from an embedding, as lstm_text), with biases,
    initial states and optionally peepholes and a sequence length."""
    rng = np.random.default_rng(seed)
    dirs = 2 if direction == "bidirectional" else 1
    scale = 1.0 / np.sqrt(hid)
    inits = {"w": rng.standard_normal((dirs, 4 * hid, inp)) * scale, "r": rng.standard_normal((dirs, 4 * hid, hid)) * scale,
             "b": rng.standard_normal((dirs, 8 * hid)) * 0.1}
    inits["h0"] = rng.standard_normal((dirs, batch, hid)) * 0.5
    inits["c0"] = rng.standard_normal((dirs, batch, hid)) * 0.5
    if peep:
        inits["p"] = rng.standard_normal((dirs, 3 * hid)) * 0.3
    tensors = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()]
    if lens is not None:
        tensors.append(numpy_helper.from_array(np.full(batch, lens, np.int32), "lens"))
    ins = ["x", "w", "r", "b", "lens" if lens is not None else "", "h0", "c0"] + (["p"] if peep else [])
    nodes = [helper.make_node("LSTM", ins, ["y", "yh", "yc"], hidden_size=hid, direction=direction)]
    if embed:
        tensors.append(numpy_helper.from_array(rng.standard_normal((50, inp)).astype(np.float32), "table"))
        nodes = [helper.make_node("Gather", ["table", "ids"], ["e"]),
                 helper.make_node("Transpose", ["e"], ["x"], perm=[1, 0, 2])] + nodes
        inputs = [helper.make_tensor_value_info("ids", TP.INT64, [batch, seq])]
    else:
        inputs = [helper.make_tensor_value_info("x", TP.FLOAT, [seq, batch, inp])]
    graph = helper.make_graph(nodes, name, inputs, [helper.make_tensor_value_info(o, TP.FLOAT, None) for o in ("y", "yh", "yc")],
                              initializer=tensors)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@needs_cargo
def test_split_lstm_steps_match_onnxruntime_and_one_thread(tmp_path: Path, monkeypatch):
    """Batch-1 LSTMs whose steps split their hidden units over 2 threads (runtime/rnn.rs
    `lstm_fused` on `par::lockstep`, from 64 units): 100 units (7 groups of 16, the last one
    masked) with peepholes, 72 units in both directions with a sequence length, 128 units fed
    by an embedding (lstm_text's shape, reverse); below the split (24 units) and batch 3 (the
    GEMM step) beside them: equal to onnxruntime and, bit for bit, to one thread."""
    from irc.oracle import random_inputs

    specs = {"case_lstm_h100": dict(seq=23, batch=1, inp=9, hid=100, peep=True),
             "case_lstm_bidir72": dict(seq=17, batch=1, inp=6, hid=72, direction="bidirectional", lens=12),
             "case_lstm_embed128": dict(seq=31, batch=1, inp=16, hid=128, direction="reverse", embed=True),
             "case_lstm_h24": dict(seq=9, batch=1, inp=5, hid=24),
             "case_lstm_b3": dict(seq=11, batch=3, inp=7, hid=70, direction="bidirectional", peep=True)}
    cases = {key: (_lstm(key, seed=seed, **spec), lambda g: random_inputs(g, batch=1, seed=13))
             for seed, (key, spec) in enumerate(specs.items())}
    outputs = run_per_thread_count(tmp_path, monkeypatch, "irc_threads_lstm", cases)
    assert_same_bits(outputs, cases)
