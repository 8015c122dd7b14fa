"""Generated code built with the crate's `blas` feature (f32 GEMMs through the system OpenBLAS).

One crate holds a few models whose GEMMs take every route into `cblas_sgemm`: Dense layers
with a transposed weight and a bias, batched MatMul with transposed operands (column-major
views), 3x3 and 1x1 convolutions. Outputs are compared with onnxruntime on the same inputs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from .conftest import needs_cargo


def _openblas_installed() -> bool:
    listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True) if shutil.which("ldconfig") else None
    return listing is not None and "libopenblas.so " in listing.stdout


needs_openblas = pytest.mark.skipif(not _openblas_installed(),
                                    reason="system OpenBLAS (libopenblas.so) missing: `make install` installs it")


def _model(name: str, inputs, outputs, nodes, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(w.astype(np.float32), k) for k, w in weights.items()]
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _models() -> dict[str, onnx.ModelProto]:
    rng = np.random.default_rng(3)
    w = lambda *shape: rng.standard_normal(shape) * 0.2  # noqa: E731
    f32 = lambda name, *shape: helper.make_tensor_value_info(name, TP.FLOAT, list(shape))  # noqa: E731
    dense = _model(
        "dense", [f32("x", "N", 96)], [f32("y", "N", 40)],
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
         helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["m"]),
         helper.make_node("Add", ["m", "b2"], ["y"])],
        {"w1": w(72, 96), "b1": w(72), "w2": w(72, 40), "b2": w(40)})
    batched = _model(
        "batched", [f32("a", "N", 24, 30), f32("b", "N", 24, 20)], [f32("y", "N", 30, 20)],
        [helper.make_node("Transpose", ["a"], ["at"], perm=[0, 2, 1]),
         helper.make_node("MatMul", ["at", "b"], ["y"])], {})
    conv = _model(
        "conv", [f32("x", "N", 3, 20, 20)], [f32("y", "N", 16, 20, 20)],
        [helper.make_node("Conv", ["x", "k1", "c1"], ["h"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Conv", ["r", "k2"], ["y"])],
        {"k1": w(12, 3, 3, 3), "c1": w(12), "k2": w(16, 12, 1, 1)})
    return {"case_blas_dense": dense, "case_blas_batched": batched, "case_blas_conv": conv}


@needs_cargo
@needs_openblas
def test_blas_feature_matches_onnxruntime(tmp_path: Path):
    from irc.backends.rust.multi import Case, build_and_run
    from irc.ir.onnx_io import from_onnx
    from irc.oracle import compare, random_inputs, run

    name = "irc_blas_feature"
    cases, expected = [], {}
    for key, model in _models().items():
        graph = from_onnx(model)
        feeds = random_inputs(graph, batch=3, seed=11)
        expected[key] = run(model, feeds)
        cases.append(Case(key, graph, list(feeds.values())))
    logs: list[str] = []
    build_and_run(cases, tmp_path / "crate", name=name, features=("blas",), log=logs.append)
    for case in cases:
        assert case.error is None, f"{case.key}: {case.stage}: {case.error}\n" + "\n".join(logs)[-2000:]
        got = dict(zip(case.output_names, case.outputs, strict=True))
        diffs = compare(expected[case.key], got)
        assert all(d.ok for d in diffs), f"{case.key}: {diffs}"
    # The feature really linked OpenBLAS (cblas_sgemm is its only user).
    binary = Path(os.environ["CARGO_TARGET_DIR"]) / "fast" / name
    linked = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    assert "libopenblas" in linked, linked
