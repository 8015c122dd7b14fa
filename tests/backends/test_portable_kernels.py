"""The kernels that CPUs without AVX-512 (and without AVX) run, on any machine.

The runtime picks AVX-512, AVX2+FMA or plain-Rust kernels at run time (runtime/cpu.rs), so
on an AVX-512 machine the other variants never run. The crate's cargo features rule the
wider ones out: `portable` (never AVX-512: the AVX2+FMA variants) and `no-avx` (the plain
Rust ones). One crate holds models that reach every kernel with SIMD variants: Winograd
F(2x2) and F(4x4) (residual + Relu, tiles overhanging the plane), direct and depthwise
convolutions (stride 2, the unpadded depthwise layer, a depthwise layer fused into the
pointwise one after it), the blocked convolution and its pointwise form, packed GEMMs and
batch-1 GEMVs, the vectorized exp / tanh / erf / sigmoid, the fused batch-1 LSTM step and
the attention chain. It is built with each feature and compared with onnxruntime.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from .conftest import needs_cargo


def _res_block(name: str, c: int, hw: int, seed: int) -> onnx.ModelProto:
    """Relu -> 3x3 conv + Relu -> 3x3 conv + residual + Relu (irc.ConvAddRelu on Winograd)."""
    rng = np.random.default_rng(seed)
    scale = 1 / np.sqrt(9 * c)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * k).astype(np.float32), n)
             for n, s, k in (("w1", (c, c, 3, 3), scale), ("b1", (c,), 0.1), ("w2", (c, c, 3, 3), scale),
                             ("b2", (c,), 0.1))]
    node = helper.make_node
    nodes = [node("Relu", ["x0"], ["x"]),
             node("Conv", ["x", "w1", "b1"], ["h0"], pads=[1, 1, 1, 1]), node("Relu", ["h0"], ["h"]),
             node("Conv", ["h", "w2", "b2"], ["z"], pads=[1, 1, 1, 1]),
             node("Add", ["z", "x"], ["s"]), node("Relu", ["s"], ["y"])]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x0", TP.FLOAT, ["N", c, hw, hw])],
                              [helper.make_tensor_value_info("y", TP.FLOAT, None)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _cases() -> dict[str, tuple[onnx.ModelProto, int]]:
    """key -> (model, batch)."""
    from . import fused_models, seq_models
    from .test_depthwise import _depthwise, _dw_pw
    from .test_threads import _conv_pool, _dense, _lstm

    fused = fused_models.build()
    seq = seq_models.build()
    cases: dict[str, tuple[onnx.ModelProto, int]] = {
        # Winograd: F(4x4) with 5 tiles a side (the last overhanging by 2), F(2x2) on 7x7 from
        # 256 channels, both with the residual and Relu in the output transform; F(4x4) odd
        # channels and pads, F(2x2) below 64 channels and on a 2-row plane.
        "case_port_wino4_res": (_res_block("wino4_res", 64, 18, 1), 2),
        "case_port_wino2_res7": (_res_block("wino2_res7", 256, 7, 2), 1),
        "case_port_wino_odd": (fused["conv_wino_odd_clip"], 2),
        "case_port_wino_c32": (fused["conv_wino_c32_relu"], 1),
        "case_port_wino_f2": (fused["conv_wino_f2_relu"], 1),
        # Direct convolutions (few input channels, stride 2) and depthwise ones (stride 2,
        # the unpadded 3x3 layer of AVX-512 at stride 1 and 2, 5x5).
        "case_port_direct_s2": (fused["conv_direct_s2_clip"], 2),
        "case_port_direct_deep": (fused["conv_direct_deep_leakyrelu"], 1),
        "case_port_dw_s2": (fused["conv_direct_dw_s2_tanh"], 1),
        "case_port_dw_5x5": (fused["conv_direct_dw_5x5_relu"], 1),
        "case_port_dw_s1_odd": (_depthwise("dw_s1_odd", 37, 29, 31, 4, "Relu", pads=[1, 1, 1, 1]), 1),
        "case_port_dw_s2_odd": (_depthwise("dw_s2_odd", 9, 30, 35, 5, "Clip", pads=[1, 1, 1, 1], strides=[2, 2]), 2),
        # Depthwise -> pointwise in row bands (the depthwise input read again after the pair).
        "case_port_dwpw_s2": (_dw_pw("dwpw_s2", 37, 19, 57, 63, 2, 6, True), 1),
        "case_port_dwpw_b2": (_dw_pw("dwpw_b2", 16, 40, 30, 33, 1, 7), 2),
        # Blocked convolution (3x3 from 64 channels, stride 2, a stem) and its pointwise form;
        # packed pointwise layers through the transposes.
        "case_port_blk_s1": (fused["conv_blk_s1_relu"], 1),
        "case_port_blk_s2": (fused["conv_blk_s2_clip"], 2),
        "case_port_blk_stem": (fused["conv_blk_stem_relu"], 1),
        "case_port_blk_pw7": (fused["conv_blk_pw_7x7_blocks_clip"], 1),
        "case_port_pk_edge": (fused["conv_pk1x1_edge_relu"], 2),
        "case_port_pk_chunks": (fused["conv_pk1x1_chunks_relu"], 1),
        "case_port_convpool": (_conv_pool("convpool", 5, 70, 61, 59, 8), 1),
        # Dense layers: batch-1 GEMVs (mlp's 784x256, one past the split), packed GEMMs with
        # odd m, n and k.
        "case_port_gemv_mlp": (_dense("gemv_mlp", 784, 256, 9), 1),
        "case_port_gemv_odd": (_dense("gemv_odd", 257, 130, 10), 1),
        "case_port_gemm8": (_dense("gemm8", 784, 300, 11), 8),
        "case_port_gemm5": (_dense("gemm5", 999, 421, 12), 5),
        "case_port_gemm_sigmoid": (fused["gemm_sigmoid"], 3),
        # Vectorized math over a wide range of inputs, GELU, a fused chain of activations.
        **{f"case_port_{k}": (seq["seq_fast"][k], 2)
           for k in ("wide_exp", "wide_tanh", "wide_sigmoid", "wide_erf", "gelu20_none", "gelu20_tanh",
                     "softmax_last")},
        "case_port_chain": (seq["irc_seq"]["chain_broadcast"], 1),
        # Fused batch-1 LSTM steps (units in groups of 16, the last one masked; peepholes;
        # both directions), a batch-3 LSTM (GEMM steps).
        "case_port_lstm_h100": (_lstm("lstm_h100", seq=9, batch=1, inp=9, hid=100, seed=13, peep=True), 1),
        "case_port_lstm_bidir": (_lstm("lstm_bidir", seq=7, batch=1, inp=6, hid=72, seed=14,
                                       direction="bidirectional", lens=5), 1),
        "case_port_lstm_b3": (_lstm("lstm_b3", seq=5, batch=3, inp=7, hid=70, seed=15), 1),
        # MatMul -> Softmax -> MatMul (irc.AttentionChain).
        "case_port_attn_mul": (seq["seq_fast"]["attn_chain_mul"], 1),
        "case_port_attn_div": (seq["seq_fast"]["attn_chain_div"], 2),
    }
    return cases


@needs_cargo
@pytest.mark.parametrize("feature,isa", [("portable", "avx2"), ("no-avx", "generic")])
def test_kernels_without_avx512_match_onnxruntime(tmp_path: Path, feature: str, isa: str):
    import os

    from irc.backends.rust.multi import Case, build_and_run
    from irc.ir.onnx_io import from_onnx
    from irc.oracle import compare, random_inputs, run

    name = "irc_portable_kernels"
    cases, expected = [], {}
    for key, (model, batch) in _cases().items():
        graph = from_onnx(model)
        feeds = random_inputs(graph, batch=batch, seed=21)
        expected[key] = run(model, feeds)
        cases.append(Case(key, graph, list(feeds.values())))
    logs: list[str] = []
    build_and_run(cases, tmp_path / "crate", name=name, features=(feature,), log=logs.append)
    binary = Path(os.environ["CARGO_TARGET_DIR"]) / "fast" / name
    widest = subprocess.run([str(binary), "--isa"], capture_output=True, text=True).stdout.strip()
    if isa == "avx2" and widest == "generic":
        pytest.skip("this CPU has no AVX2+FMA")
    assert widest == isa, f"--features {feature}: the kernels use {widest}"
    failed = []
    for case in cases:
        if case.error is not None:
            failed.append(f"{case.key}: {case.stage}: {case.error}")
            continue
        got = dict(zip(case.output_names, case.outputs, strict=True))
        diffs = compare(expected[case.key], got)
        if not all(d.ok for d in diffs):
            failed.append(f"{case.key}: {diffs}")
    assert not failed, "\n".join(failed) + "\n" + "\n".join(logs)[-2000:]
