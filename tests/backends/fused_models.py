"""Models of the `irc` domain's fused ops (`irc.Conv<Act>`, `irc.Gemm<Act>`, `irc.MatMul<Act>`).

Each is a small standard-ONNX graph (a Conv, Gemm or MatMul followed by an activation) run
through `irc.passes.optimize(graph, level=3)`, which fuses the pair and attaches the
model-local ONNX function, so onnxruntime is the oracle of the fused op too.
"""

from __future__ import annotations

import numpy as np
from onnx import ModelProto, helper

from .op_models import F, model, w

# Activation -> (attributes of the ONNX op, extra initializers for Clip's min/max).
ACTS = {
    "Relu": ({}, []),
    "Sigmoid": ({}, []),
    "Tanh": ({}, []),
    "LeakyRelu": ({"alpha": 0.15}, []),
    "HardSigmoid": ({"alpha": 0.3, "beta": 0.4}, []),
    "Clip": ({}, [("lo", np.float32(0.0)), ("hi", np.float32(0.5))]),
}


def _act_node(act: str, src: str) -> tuple[list, list]:
    attrs, inits = ACTS[act]
    ins = [src] + [name for name, _ in inits]
    return [helper.make_node(act, ins, ["y"], name=act.lower(), **attrs)], inits


def fused(base_nodes: list, act: str, inputs, inits, name: str) -> ModelProto:
    """Base op(s) writing `z`, then `act`; optimized at level 3 (the pair becomes one irc op)."""
    from irc.ir.onnx_io import from_onnx, to_onnx
    from irc.passes import optimize

    nodes, act_inits = _act_node(act, "z")
    graph = from_onnx(model(name, base_nodes + nodes, inputs, [("y", F)], list(inits) + act_inits))
    optimize(graph, level=3)
    fused_ops = [op for op in graph.ops if op.domain == "irc"]
    assert len(fused_ops) == 1, f"{name}: expected one irc op, got {graph.op_histogram()}"
    return to_onnx(graph)


def residual(nodes: list, inputs, inits, name: str, fused_op: str) -> ModelProto:
    """A residual block writing `y`, optimized at level 3: its Conv + Add (+ act) must become
    ``irc.<fused_op>`` (other irc ops may appear beside it)."""
    from irc.ir.onnx_io import from_onnx, to_onnx
    from irc.passes import optimize

    graph = from_onnx(model(name, nodes, inputs, [("y", F)], list(inits)))
    optimize(graph, level=3)
    types = [op.op_type for op in graph.ops if op.domain == "irc"]
    assert fused_op in types, f"{name}: expected irc.{fused_op}, got {graph.op_histogram()}"
    return to_onnx(graph)


def residual_models(rng) -> dict[str, ModelProto]:
    """irc.ConvAdd<Act>: the residual moved in (it dies at the Add) or copied (a graph input),
    through every conv path (im2col chunks of one or several images, pointwise, transposed
    small-image layout, depthwise fallback, 1-D)."""
    conv = helper.make_node
    out = {}
    # ResNet basic block; x0 -> relu -> x is an intermediate that dies at the Add (moved).
    block = [conv("Relu", ["x0"], ["x"]),
             conv("Conv", ["x", "w1", "b1"], ["h0"], pads=[1, 1, 1, 1]), conv("Relu", ["h0"], ["h"]),
             conv("Conv", ["h", "w2", "b2"], ["z"], pads=[1, 1, 1, 1]),
             conv("Add", ["z", "x"], ["s"]), conv("Relu", ["s"], ["y"])]
    for key, c, hw in (("res_block", 20, 9), ("res_block_small", 40, 3), ("res_block_wino", 64, 15)):
        inits = [("w1", w(rng, c, c, 3, 3) * 0.2), ("b1", w(rng, c)), ("w2", w(rng, c, c, 3, 3) * 0.2), ("b2", w(rng, c))]
        out[key] = residual(block, [("x0", F, ["N", c, hw, hw])], inits, key, "ConvAddRelu")
    # Residual as a graph input (borrowed: copied into the output), skip on the left.
    cases = [  # (key, conv attrs, x shape, w shape, residual shape, activation or None)
        ("res_pointwise", {}, ["N", 8, 5, 6], (24, 8, 1, 1), ["N", 24, 5, 6], "Clip"),
        ("res_strided", {"strides": [2, 2], "pads": [1, 1, 1, 1]}, ["N", 6, 9, 9], (18, 6, 3, 3), ["N", 18, 5, 5], None),
        ("res_blocked", {"strides": [2, 2], "pads": [1, 1, 1, 1]}, ["N", 64, 15, 16], (36, 64, 3, 3), ["N", 36, 8, 8],
         "Sigmoid"),
        ("res_small", {"pads": [1, 1, 1, 1]}, ["N", 4, 3, 3], (36, 4, 3, 3), ["N", 36, 3, 3], "LeakyRelu"),
        ("res_winograd", {"pads": [0, 1, 1, 0]}, ["N", 66, 16, 15], (35, 66, 3, 3), ["N", 35, 15, 14], "Tanh"),
        ("res_depthwise", {"group": 6, "pads": [1, 1, 1, 1]}, ["N", 6, 7, 7], (6, 1, 3, 3), ["N", 6, 7, 7], "Relu"),
        ("res_1d", {"pads": [1, 1]}, ["N", 5, 11], (20, 5, 3), ["N", 20, 11], "Sigmoid"),
        # Transposed layout, one image per GEMM: out^T stored column-major onto the residual.
        ("res_transposed", {}, ["N", 16, 15, 15], (300, 16, 1, 1), ["N", 300, 15, 15], "Sigmoid"),
    ]
    for key, attrs, xs, ws, rs, act in cases:
        nodes = [conv("Conv", ["x", "w", "b"], ["z"], **attrs), conv("Add", ["r", "z"], ["s" if act else "y"])]
        act_nodes, act_inits = _act_node(act, "s") if act else ([], [])
        # Fan-in-scaled weights on Winograd (see the `wino_*` cases below).
        scale = np.float32(1 / np.sqrt(9 * ws[1]) if key == "res_winograd" else 1)
        inits = [("w", w(rng, *ws) * scale), ("b", w(rng, ws[0]))] + act_inits
        out[key] = residual(nodes + act_nodes, [("x", F, xs), ("r", F, rs)], inits, key, "ConvAdd" + (act or ""))
    return out


def build() -> dict[str, ModelProto]:
    """key -> model; every activation appears with each base op."""
    rng = np.random.default_rng(5)
    out: dict[str, ModelProto] = {}
    conv_cases = [  # (attributes, input shape, weight shape, has bias)
        ({"pads": [1, 1, 1, 1]}, ["N", 4, 9, 8], (6, 4, 3, 3), True),
        ({"group": 2, "strides": [2, 1], "pads": [1, 0, 1, 2]}, ["N", 4, 7, 8], (6, 2, 3, 3), False),
        ({"group": 5, "pads": [1, 1, 1, 1], "strides": [2, 2]}, ["N", 5, 9, 9], (5, 1, 3, 3), True),  # depthwise
        ({}, ["N", 8, 5, 6], (7, 8, 1, 1), True),  # pointwise
        ({"dilations": [2]}, ["N", 3, 12], (4, 3, 3), True),  # 1-D
        ({"pads": [1, 1, 1, 1, 1, 1]}, ["N", 2, 4, 3, 5], (3, 2, 3, 3, 3), True),  # 3-D
    ]
    for i, act in enumerate(ACTS):
        attrs, xs, ws, has_b = conv_cases[i % len(conv_cases)]
        ins = ["x", "w", "b"] if has_b else ["x", "w"]
        inits = [("w", w(rng, *ws))] + ([("b", w(rng, ws[0]))] if has_b else [])
        out[f"conv_{act.lower()}"] = fused([helper.make_node("Conv", ins, ["z"], **attrs)], act,
                                           [("x", F, xs)], inits, f"conv_{act.lower()}")
    depthwise = [  # stride 1 (flat kernel): 3x3, dilated, 5x5 asymmetric pads; stride 2 phases
        ("dw3", {"group": 6, "pads": [1, 1, 1, 1]}, (6, 1, 3, 3)),
        ("dw_dil", {"group": 6, "pads": [2, 1, 0, 2], "dilations": [2, 1]}, (6, 1, 3, 3)),
        ("dw5", {"group": 6, "pads": [2, 0, 1, 2]}, (6, 1, 5, 5)),
        ("dw3_s2", {"group": 6, "pads": [1, 1, 1, 1], "strides": [2, 2]}, (6, 1, 3, 3)),
    ]
    for key, attrs, ws in depthwise:
        out[f"conv_{key}_clip"] = fused([helper.make_node("Conv", ["x", "w", "b"], ["z"], **attrs)], "Clip",
                                        [("x", F, ["N", 6, 10, 11])], [("w", w(rng, *ws)), ("b", w(rng, 6))],
                                        f"conv_{key}_clip")
    # Direct kernel (`conv_direct`): few input channels, 8-channel tiles with a remainder,
    # rows that are not whole vectors, stride 2 and 3 phases, dilation, asymmetric pads,
    # an activation outside the kernel (Sigmoid), the deepest columns it takes (32 x 3x3).
    direct = [
        ("direct_s1", {}, ["N", 3, 12, 26], (10, 3, 3, 3), "Relu"),
        ("direct_s2", {"strides": [2, 2], "pads": [1, 1, 1, 1]}, ["N", 3, 17, 35], (9, 3, 3, 3), "Clip"),
        ("direct_dil", {"pads": [0, 2, 1, 0], "dilations": [2, 1], "strides": [1, 3]}, ["N", 2, 9, 40], (5, 2, 3, 4),
         "Sigmoid"),
        ("direct_deep", {"pads": [1, 0, 0, 1]}, ["N", 32, 6, 19], (17, 32, 3, 3), "LeakyRelu"),
        ("direct_dw_wide", {"group": 4, "pads": [1, 1, 1, 1]}, ["N", 4, 5, 70], (4, 1, 3, 3), "Clip"),
        ("direct_dw_s2", {"group": 4, "pads": [0, 1, 2, 1], "strides": [2, 2]}, ["N", 4, 9, 53], (4, 1, 3, 3), "Tanh"),
        ("direct_dw_5x5", {"group": 3, "pads": [2, 2, 2, 2], "strides": [1, 2]}, ["N", 3, 7, 33], (3, 1, 5, 5), "Relu"),
    ]
    for key, attrs, xs, ws, act in direct:
        out[f"conv_{key}_{act.lower()}"] = fused([helper.make_node("Conv", ["x", "w", "b"], ["z"], **attrs)], act,
                                                 [("x", F, xs)], [("w", w(rng, *ws)), ("b", w(rng, ws[0]))],
                                                 f"conv_{key}")
    # Small images, many channels: the weights are packed at load (`rt::conv_packed`).
    packed = [
        ("pk3", {"pads": [1, 1, 1, 1]}, ["N", 4, 5, 5], (32, 4, 3, 3), "Relu"),
        ("pk_group", {"group": 2, "strides": [2, 1], "pads": [0, 1, 1, 1]}, ["N", 4, 4, 5], (40, 2, 3, 3), "Sigmoid"),
        ("pk1x1", {}, ["N", 8, 3, 3], (24, 8, 1, 1), "Clip"),
        ("pk1d", {"pads": [1, 2]}, ["N", 3, 6], (16, 3, 3), "LeakyRelu"),
        # Pointwise, weights as A, the input planes read in place (592 positions: a 512-wide
        # panel plus 2x32 + a 16-wide half tile); transposed layout with a 40 = 32 + 8 edge
        # (half tile, scalar store) and a transpose with full and partial 8x8 tiles.
        ("pk1x1_rows", {}, ["N", 12, 16, 37], (24, 12, 1, 1), "Clip"),
        ("pk1x1_edge", {}, ["N", 20, 5, 7], (40, 20, 1, 1), "Relu"),
        # Transposed layout, one image per GEMM (225 x 300 > TRANSPOSED_BLOCK floats).
        ("pk1x1_chunks", {}, ["N", 16, 15, 15], (300, 16, 1, 1), "Relu"),
    ]
    # AVX-512 direct kernel (`rt::conv_blocked`, 3x3-style layers with >= 64 input channels):
    # 32-channel blocks with a remainder, tiles of 1x14, 2x7 and 4x3 positions with clipped
    # tails, stride 2 through the phase split, asymmetric pads, an activation outside the
    # kernel (Tanh).
    packed += [
        ("blk_s1", {"pads": [1, 1, 1, 1]}, ["N", 64, 6, 17], (40, 64, 3, 3), "Relu"),
        ("blk_s2", {"strides": [2, 2], "pads": [1, 0, 1, 1]}, ["N", 72, 13, 12], (33, 72, 3, 3), "Clip"),
        ("blk_small", {"pads": [0, 1, 1, 0]}, ["N", 64, 5, 4], (16, 64, 3, 3), "Tanh"),
        # Stems: 7x7/s2 over 3 channels with odd sizes (`conv_direct`, 37 output channels);
        # 5x5/s1 over 5 channels with asymmetric pads (`conv_blocked`).
        ("blk_stem", {"strides": [2, 2], "pads": [3, 3, 3, 3]}, ["N", 3, 23, 21], (37, 3, 7, 7), "Relu"),
        ("blk_5x5", {"pads": [2, 1, 2, 1]}, ["N", 5, 9, 30], (20, 5, 5, 5), "Clip"),
        ("stem_3x3s2", {"strides": [2, 2], "pads": [1, 1, 1, 1]}, ["N", 3, 17, 20], (32, 3, 3, 3), "Clip"),
        # Pointwise with >= 256 input channels on small planes: 7x14 and 7x7 (2x7 tiles, a
        # 1x7 tile for the last row) read in place, 5x6 through the padded copy (7-wide
        # tiles overhang the rows).
        ("blk_pw", {}, ["N", 260, 7, 14], (40, 260, 1, 1), "Clip"),
        ("blk_pw_7x7", {}, ["N", 256, 7, 7], (33, 256, 1, 1), "Relu"),
        ("blk_pw_copy", {}, ["N", 256, 5, 6], (20, 256, 1, 1), "Relu"),
        # 7x7 with 4 blocks (the last one of a single channel): each block's tiles prefetch
        # the next block's weights, the last block none.
        ("blk_pw_7x7_blocks", {}, ["N", 300, 7, 7], (97, 300, 1, 1), "Clip"),
        # Winograd F(4x4, 3x3) (`rt::conv_winograd`, 3x3/s1 with >= 32 input channels on
        # planes of >= 14x14 outputs): odd channel counts, asymmetric pads <= 1, a plane
        # whose tiles overhang the last row and column, blocks of tiles crossing images
        # (batch 2), no padding, an activation outside the store (Sigmoid).
        ("wino_odd", {"pads": [1, 0, 0, 1]}, ["N", 65, 15, 17], (40, 65, 3, 3), "Clip"),
        ("wino_valid", {}, ["N", 64, 17, 16], (33, 64, 3, 3), "Sigmoid"),
        ("wino_same", {"pads": [1, 1, 1, 1]}, ["N", 70, 15, 15], (67, 70, 3, 3), "Relu"),
        ("wino_c32", {"pads": [1, 1, 1, 1]}, ["N", 32, 15, 14], (24, 32, 3, 3), "Relu"),
        # The layers above from 64 input channels take F(4x4, 3x3) (fewer multiplies than
        # F(2x2) with their tile overhang), wino_c32 F(2x2); a plane of 2 output rows stays
        # on F(2x2).
        ("wino_f2", {}, ["N", 64, 4, 120], (24, 64, 3, 3), "Relu"),
        # Tile rows of at most 8 tiles share the transforms' 16 lanes (runtime/winograd.rs
        # `lane_groups`): F(2x2) on 7x7 (4 rows of 4 tiles, two images per block), F(4x4) on
        # 26x27 (rows of 7 tiles, blocks of 32 tiles cutting rows and crossing images).
        ("wino_7x7", {"pads": [1, 1, 1, 1]}, ["N", 256, 7, 7], (40, 256, 3, 3), "Relu"),
        ("wino_26x27", {"pads": [1, 1, 1, 1]}, ["N", 64, 26, 27], (24, 64, 3, 3), "Clip"),
    ]
    for key, attrs, xs, ws, act in packed:
        # Winograd layers with fan-in-scaled weights (outputs of unit scale, as in a trained
        # network): F(4x4)'s rounding error, ~1e-5 of the output's scale, is above the 1e-4
        # relative tolerance on outputs near zero of 585 unit-variance products.
        scale = np.float32(1 / np.sqrt(9 * ws[1]) if key.startswith("wino") else 1)
        out[f"conv_{key}_{act.lower()}"] = fused([helper.make_node("Conv", ["x", "w", "b"], ["z"], **attrs)], act,
                                                 [("x", F, xs)], [("w", w(rng, *ws) * scale), ("b", w(rng, ws[0]))],
                                                 f"conv_{key}")
    out["conv_pk_plain"] = model("conv_pk_plain", [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 0, 1, 0])],
                                 [("x", F, ["N", 6, 4, 4])], [("y", F)], [("w", w(rng, 20, 6, 3, 3))])
    gemm_cases = [  # (attributes, A shape, B shape, C shape or None)
        ({"transB": 1}, ["N", 6], (5, 6), (5,)),
        ({"alpha": 0.5, "beta": 2.0}, ["N", 7], (7, 9), (1, 9)),
        ({}, ["N", 6], (6, 4), None),
        ({"transB": 1, "beta": 0.5}, [3, 6], (5, 6), (3, 5)),
        ({"transA": 1}, [6, "N"], (6, 3), (3,)),
        ({"transB": 1}, ["N", 40], (33, 40), (33,)),
    ]
    for i, act in enumerate(ACTS):
        attrs, a_shape, b_shape, c_shape = gemm_cases[i % len(gemm_cases)]
        inits = [("wb", w(rng, *b_shape))] + ([("c", w(rng, *c_shape))] if c_shape else [])
        ins = ["a", "wb"] + (["c"] if c_shape else [])
        out[f"gemm_{act.lower()}"] = fused([helper.make_node("Gemm", ins, ["z"], **attrs)], act,
                                           [("a", F, a_shape)], inits, f"gemm_{act.lower()}")
    mm_cases = [(["N", 5], (5, 3)), (["N", 2, 4, 5], (5, 6)), (["N", 3], (3, 8))]
    for i, act in enumerate(ACTS):
        a_shape, b_shape = mm_cases[i % len(mm_cases)]
        out[f"matmul_{act.lower()}"] = fused([helper.make_node("MatMul", ["a", "wb"], ["z"])], act,
                                             [("a", F, a_shape)], [("wb", w(rng, *b_shape))],
                                             f"matmul_{act.lower()}")
    out.update(residual_models(rng))
    return out
