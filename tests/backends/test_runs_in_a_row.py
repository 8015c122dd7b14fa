"""Buffers reused from one call to the next (the conv column buffer, the depthwise bands,
the padded-plane and product-block scratch kept per thread; perf-pool's recycled outputs,
measured and not kept, bench/NOTES.md "Eleventh round"): one harness process runs the same
model several times in a row, with batch sizes that change between runs, so later runs get
scratch holding the earlier runs' values: every run must still match onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from .conftest import needs_cargo


def _cnn() -> onnx.ModelProto:
    """A stem conv, a depthwise -> pointwise pair, a 3x3 conv, a pointwise conv with 64
    output channels, global pooling and a dense head, plus a MatMul on the flat features."""
    rng = np.random.default_rng(3)

    def t(name, *shape, scale=None):
        fan = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        a = rng.standard_normal(shape) * (scale if scale is not None else 1 / np.sqrt(fan))
        return numpy_helper.from_array(a.astype(np.float32), name)

    inits = [t("w0", 16, 3, 3, 3), t("b0", 16, scale=0.1), t("wd", 16, 1, 3, 3), t("bd", 16, scale=0.1),
             t("wp", 32, 16, 1, 1), t("bp", 32, scale=0.1), t("w3", 48, 32, 3, 3), t("b3", 48, scale=0.1),
             t("w4", 64, 48, 1, 1), t("b4", 64, scale=0.1), t("wf", 10, 64), t("bf", 10, scale=0.1),
             t("wm", 64, 40)]
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node("Conv", ["r0", "wd", "bd"], ["cd"], pads=[1, 1, 1, 1], group=16),
        helper.make_node("Clip", ["cd", "lo", "hi"], ["rd"]),
        helper.make_node("Conv", ["rd", "wp", "bp"], ["cp"]),
        helper.make_node("Clip", ["cp", "lo", "hi"], ["rp"]),
        helper.make_node("Conv", ["rp", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("Conv", ["r3", "w4", "b4"], ["c4"]),
        helper.make_node("Relu", ["c4"], ["r4"]),
        helper.make_node("GlobalAveragePool", ["r4"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1),
        helper.make_node("MatMul", ["f", "wm"], ["z"]),
    ]
    inits += [numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
              numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
    graph = helper.make_graph(
        nodes, "recycled", [helper.make_tensor_value_info("x", TP.FLOAT, ["N", 3, 46, 42])],
        [helper.make_tensor_value_info("y", TP.FLOAT, ["N", 10]), helper.make_tensor_value_info("z", TP.FLOAT, ["N", 40])],
        initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@needs_cargo
def test_runs_in_a_row_with_changing_batch_match_onnxruntime(tmp_path: Path, monkeypatch):
    from irc.backends.rust.multi import Case, build_and_run
    from irc.ir.onnx_io import from_onnx
    from irc.oracle import compare, run

    model = _cnn()
    monkeypatch.setenv("RAYON_NUM_THREADS", "1")
    cases, expected = [], {}
    # Same model, one process: batch 2, again 2 (different values), 1, 3, then 2 again.
    for i, batch in enumerate([2, 2, 1, 3, 2]):
        key = f"case_row_{i}"
        feeds = {"x": (np.random.default_rng(10 + i).standard_normal((batch, 3, 46, 42)) * (1 + i)).astype(np.float32)}
        expected[key] = run(model, feeds)
        cases.append(Case(key, from_onnx(model), list(feeds.values())))
    logs: list[str] = []
    build_and_run(cases, tmp_path / "crate", name="irc_runs_in_a_row", log=logs.append)
    for case in cases:
        assert case.error is None, f"{case.key}: {case.stage}: {case.error}\n" + "\n".join(logs)[-2000:]
        got = dict(zip(case.output_names, case.outputs, strict=True))
        diffs = compare(expected[case.key], got)
        assert all(d.ok for d in diffs), f"{case.key}: {diffs}"
