"""The CLI as a user runs it: a subprocess, exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from corpus import ONNX_DATA
from onnx import TensorProto, helper, numpy_helper

RESNET = ONNX_DATA / "light" / "light_resnet50.onnx"


def irc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "irc.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def assert_user_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_version():
    result = irc("--version")
    assert result.returncode == 0 and result.stdout.startswith("irc ")


def test_help_does_not_import_frameworks():
    code = ("import sys, irc.cli; "
            "print(sorted(m for m in ('tensorflow', 'torch', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _mlp_with_weights(path):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("w1", (8, 16)), ("b1", (16,)), ("w2", (16, 4)))]
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])],
        "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), path)
    return inits


@pytest.mark.parametrize("model", ["mlp", "resnet"])
def test_inspect_json_counts_parameters(tmp_path, model):
    if model == "mlp":
        path = tmp_path / "mlp.onnx"
        inits = _mlp_with_weights(path)
    else:
        path = RESNET
        inits = list(onnx.load(path).graph.initializer)
    arrays = [numpy_helper.to_array(t) for t in inits]
    result = irc("inspect", path, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["parameters"] == sum(a.size for a in arrays)
    assert summary["parameter_bytes"] == sum(a.nbytes for a in arrays)
    assert summary["nodes"] == len(onnx.load(path).graph.node)
    assert sum(summary["ops"].values()) == summary["nodes"]


def test_inspect_table(tmp_path):
    path = tmp_path / "mlp.onnx"
    count = sum(numpy_helper.to_array(t).size for t in _mlp_with_weights(path))
    result = irc("inspect", path)
    assert result.returncode == 0, result.stderr
    for text in ("x", "float", "[batch, 8]", "Gemm", f"parameters: {count}"):
        assert text in result.stdout


def test_import_writes_and_refuses_to_overwrite(tmp_path):
    src = tmp_path / "mlp.onnx"
    _mlp_with_weights(src)
    out = tmp_path / "out.onnx"
    assert irc("import", src, "-o", out).returncode == 0
    assert onnx.load(out) == onnx.load(src)
    out.write_bytes(b"precious")
    assert_user_error(irc("import", src, "-o", out), "exists", "--force")
    assert out.read_bytes() == b"precious"
    assert irc("import", src, "-o", out, "--force").returncode == 0


def _truncated(tmp_path):
    path = tmp_path / "truncated.onnx"
    data = RESNET.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _invalid(tmp_path):
    path = tmp_path / "invalid.onnx"
    graph = helper.make_graph([helper.make_node("Relu", ["nowhere"], ["y"])], "bad",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, ir_version=10), path)
    return path


@pytest.mark.parametrize("command", ["inspect", "import"])
@pytest.mark.parametrize("case,needle", [
    ("missing", "no such file"),
    ("text", "not a valid ONNX"),
    ("truncated", "not a valid ONNX"),
    ("invalid", "invalid ONNX model"),
    ("directory", "directory"),
])
def test_bad_models_are_one_line_errors(tmp_path, command, case, needle):
    path = {
        "missing": lambda: tmp_path / "nope.onnx",
        "text": lambda: (tmp_path / "t.onnx").write_text("hello") and tmp_path / "t.onnx",
        "truncated": lambda: _truncated(tmp_path),
        "invalid": lambda: _invalid(tmp_path),
        "directory": lambda: tmp_path,
    }[case]()
    args = [command, path] + (["-o", tmp_path / "out.onnx"] if command == "import" else [])
    result = irc(*args)
    assert_user_error(result, needle)
    assert not (tmp_path / "out.onnx").exists()


def test_debug_shows_traceback(tmp_path):
    result = irc("--debug", "inspect", tmp_path / "nope.onnx")
    assert result.returncode != 0 and "Traceback" in result.stderr
