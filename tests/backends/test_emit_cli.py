"""`irc emit` diagnostics and `irc verify` end to end on a model with hostile names (real cargo builds)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from .conftest import needs_cargo

HOSTILE = [
    'x"); std::process::exit(1); //',
    "fn",
    "*/ panic!() /*",
    "line\nbreak\r\ttab",
    "ünïcødé_Ωμέγα",
    "self",
    "r#type",
    "0leading digit",
    "",
]


def irc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "irc.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})


def hostile_model() -> onnx.ModelProto:
    """A small MLP whose every name is an injection attempt."""
    rng = np.random.default_rng(3)
    names = HOSTILE
    w = numpy_helper.from_array(rng.standard_normal((4, 5)).astype(np.float32), names[2] + "weight")
    b = numpy_helper.from_array(rng.standard_normal((5,)).astype(np.float32), names[1])
    nodes = [
        helper.make_node("MatMul", [names[0], w.name], ["h\"1"], name=names[3]),
        helper.make_node("Add", ["h\"1", names[1]], [names[5]], name=names[4]),
        helper.make_node("Relu", [names[5]], ["out */ \" \\ end"], name=names[6]),
        helper.make_node("Sigmoid", [names[5]], [names[4] + "_2"], name=names[7]),
        helper.make_node("Tanh", ["out */ \" \\ end"], ["loop"], name=""),
    ]
    graph = helper.make_graph(
        nodes, 'graph"name */ fn main() {}',
        [helper.make_tensor_value_info(names[0], TP.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("loop", TP.FLOAT, None),
         helper.make_tensor_value_info(names[4] + "_2", TP.FLOAT, None)],
        [w, b])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@needs_cargo
def test_hostile_names_compile_clean_and_match(tmp_path):
    path = tmp_path / "hostile.onnx"
    onnx.save(hostile_model(), path)
    crate = tmp_path / "crate"
    proc = irc("verify", str(path), "-o", str(crate), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and len(report["outputs"]) == 2
    lib = (crate / "src" / "lib.rs").read_text()
    # Names reach the source only as escaped literals: no raw newline or quote from a name survives.
    assert "line\nbreak" not in lib and 'x"); std' not in lib
    # Warnings and clippy: the generated crate must be clean.
    env = {**os.environ}
    build = subprocess.run(["cargo", "build", "--release", "--manifest-path", str(crate / "Cargo.toml")],
                           capture_output=True, text=True, env=env)
    assert build.returncode == 0 and "warning" not in build.stderr, build.stderr
    if shutil.which("cargo-clippy") or subprocess.run(["cargo", "clippy", "--version"],
                                                      capture_output=True).returncode == 0:
        clippy = subprocess.run(["cargo", "clippy", "--release", "--manifest-path", str(crate / "Cargo.toml"),
                                 "--", "-D", "warnings"], capture_output=True, text=True, env=env)
        assert clippy.returncode == 0, clippy.stderr[-3000:]


@needs_cargo
def test_hostile_crate_cli_contract(tmp_path):
    """--input NAME=FILE, --output-dir with outputs.json keyed by ONNX names, --bench's last line.

    Built with `--cpu native` (the other tests build portable crates), so both settings run.
    """
    path = tmp_path / "hostile.onnx"
    onnx.save(hostile_model(), path)
    crate = tmp_path / "crate"
    bad_cpu = irc("emit", str(path), "-o", str(crate), "--cpu", "pentium")
    assert bad_cpu.returncode == 2 and "--cpu" in bad_cpu.stderr and not crate.exists()
    assert irc("emit", str(path), "-o", str(crate), "--weights", "embed", "--cpu", "native").returncode == 0
    assert "target-cpu=native" in (crate / ".cargo" / "config.toml").read_text()
    from irc.verify import cargo_build

    binary = cargo_build(crate)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    arg = f"{HOSTILE[0]}={tmp_path / 'x.npy'}"
    run = subprocess.run([str(binary), "--input", arg, "--output-dir", str(tmp_path / "out")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    mapping = json.loads((tmp_path / "out" / "outputs.json").read_text())
    assert set(mapping) == {"loop", HOSTILE[4] + "_2"}
    from irc.oracle import run as ort_run

    expected = ort_run(hostile_model(), {HOSTILE[0]: x})
    for name, file in mapping.items():
        np.testing.assert_allclose(np.load(tmp_path / "out" / file), expected[name], rtol=1e-5, atol=1e-6)
    bench = subprocess.run([str(binary), "--input", arg, "--bench", "5"], capture_output=True, text=True)
    assert bench.returncode == 0
    last = bench.stdout.strip().splitlines()[-1]
    assert last.startswith("bench: runs=5 median_us=") and " p90_us=" in last
    bad = subprocess.run([str(binary), "--input", f"{HOSTILE[0]}={tmp_path / 'nope.npy'}"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "error" in bad.stderr and "panicked" not in bad.stderr
    wrong = np.zeros((3, 7), np.float32)
    np.save(tmp_path / "wrong.npy", wrong)
    bad = subprocess.run([str(binary), "--input", f"{HOSTILE[0]}={tmp_path / 'wrong.npy'}"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "shape" in bad.stderr and "panicked" not in bad.stderr


def test_emit_lists_every_unsupported_node(tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="fine"),
        helper.make_node("StringNormalizer", ["s"], ["t"], name="strnorm_node"),
        helper.make_node("Custom", ["a"], ["b"], name="custom_node", domain="my.domain"),
        helper.make_node("Neg", ["b"], ["y"], name="neg"),
    ]
    graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TP.FLOAT, [2]),
                                             helper.make_tensor_value_info("s", TP.STRING, [2])],
                              [helper.make_tensor_value_info("y", TP.FLOAT, [2]),
                               helper.make_tensor_value_info("t", TP.STRING, [2])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.domain", 1)])
    m.ir_version = 8
    path = tmp_path / "bad.onnx"
    onnx.save(m, path)
    proc = irc("emit", str(path), "-o", str(tmp_path / "crate"), "--json")
    assert proc.returncode == 2, proc.stderr
    items = json.loads(proc.stdout)["unsupported"]
    names = {i["node"] for i in items}
    assert {"strnorm_node", "custom_node"} <= names
    assert not (tmp_path / "crate").exists()
    proc = irc("emit", str(path), "-o", str(tmp_path / "crate"))
    assert proc.returncode == 2 and "strnorm_node" in proc.stderr and "Traceback" not in proc.stderr
    existing = tmp_path / "exists"
    existing.mkdir()
    proc = irc("emit", str(path), "-o", str(existing))
    assert proc.returncode == 2 and "--force" in proc.stderr


@needs_cargo
def test_verify_exit_1_and_bisect_names_first_divergent_node(tmp_path):
    """At zero tolerance transcendental ops differ from onnxruntime by a few ULP: verify exits 1
    and --bisect names a node after the exact Relu."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="exact_relu"),
             helper.make_node("Softmax", ["r"], ["s"], name="soft", axis=-1),
             helper.make_node("Tanh", ["s"], ["y"], name="tanh_node")]
    graph = helper.make_graph(nodes, "ulp", [helper.make_tensor_value_info("x", TP.FLOAT, [4, 64])],
                              [helper.make_tensor_value_info("y", TP.FLOAT, None)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = tmp_path / "ulp.onnx"
    onnx.save(m, path)
    proc = irc("verify", str(path), "--atol", "0", "--rtol", "0", "--bisect", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert not report["ok"] and report["outputs"][0]["max_ulp"] > 0
    assert report["first_divergence"] and report["first_divergence"].split()[0] in ("soft", "tanh_node")
    ok = irc("verify", str(path))
    assert ok.returncode == 0 and "verify: ok" in ok.stdout
