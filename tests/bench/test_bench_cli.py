"""`irc bench` end to end on a tiny model: JSON figures, the table, the build cache, bad input."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, CARGO_TARGET_DIR=os.environ.get("CARGO_TARGET_DIR", str(REPO / ".cargo-target")))
RUNS = 20


def irc(*args: str, prelude: str = "") -> subprocess.CompletedProcess:
    """The irc CLI in a fresh interpreter; ``prelude`` runs first (e.g. to hide a package)."""
    code = "\n".join([prelude, "import sys", "from irc.cli import main", "sys.argv = ['irc', *sys.argv[1:]]", "main()"])
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=ENV,
                          timeout=900)


def irc_here(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """The irc CLI in this process (fast, for argument errors): (exit code, stderr)."""
    from irc.cli import main

    monkeypatch.setattr(sys, "argv", ["irc", *args])
    with pytest.raises(SystemExit) as stop:
        main()
    return stop.value.code, capsys.readouterr().err


def tiny_model(path: Path, batch: int | str) -> Path:
    """Token embedding (Gather) + Dense + ReLU + Dense: 2 inputs, 2 outputs, ~1k parameters."""
    rng = np.random.default_rng(7)
    inits = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
             for name, shape in (("table", (50, 8)), ("w1", (16, 24)), ("b1", (24,)), ("w2", (24, 3)))]
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"]),
        helper.make_node("ReduceMean", ["emb"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("Concat", ["pooled", "x"], ["features"], axis=1),
        helper.make_node("MatMul", ["features", "w1"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["hb"]),
        helper.make_node("Relu", ["hb"], ["hidden"]),
        helper.make_node("MatMul", ["hidden", "w2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_bench",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [batch, 5]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 3]),
         helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [batch, 24])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench_cli_models")
    return {"dynamic": tiny_model(root / "tiny_bench.onnx", "N"),
            "fixed": tiny_model(root / "fixed.onnx", 1)}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench_cli") / "work"


def backend_state() -> str:
    """A digest of the emitter and runtime sources: the crate is the same only if they are."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "irc" / "backends").rglob("*")):
        if path.is_file() and path.suffix in (".py", ".rs", ".j2"):
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def backend_before() -> str:
    return backend_state()


@pytest.fixture(scope="module")
def bench_json(models, work, backend_before) -> dict:
    ran = irc("bench", str(models["dynamic"]), "--batch", "1,3", "--threads", "1", "--runs", str(RUNS),
              "--json", "--work", str(work))
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert ran.stderr == ""  # no terminal: no progress, nothing else
    return json.loads(ran.stdout)


@functools.cache
def emit_has(option: str) -> bool:
    help_text = irc("emit", "--help").stdout
    return re.search(rf"{option}(?![\w-])", help_text) is not None


def test_verified_and_every_configuration_timed(bench_json):
    assert bench_json["verified"] is True
    assert [(r["batch"], r["threads"]) for r in bench_json["rows"]] == [(1, 1), (3, 1)]
    binding = emit_has("--python") and shutil.which("maturin") is not None
    expected = {"onnxruntime", "tract", "irc_native"} | ({"irc_python"} if binding else set())
    for row in bench_json["rows"]:
        assert set(row["engines"]) == expected
        for name, entry in row["engines"].items():
            assert entry["verified"] is True and entry["error"] is None, (name, entry)
            assert entry["max_abs_err"] < 1e-3
            assert entry["p90_us"] >= entry["median_us"] >= 0
            assert entry["peak_rss_mb"] > 0
            if name != "irc_native":  # one timing per call; the native loop reports one per process
                assert entry["samples"] == RUNS
                assert entry["throughput_per_s"] == pytest.approx(row["batch"] * 1e6 / entry["median_us"], rel=1e-2)


def test_ratios_are_quotients_of_medians(bench_json):
    for row in bench_json["rows"]:
        e, r = row["engines"], row["ratios"]
        via = r["irc_measured_via"]
        assert via == ("irc_python" if "irc_python" in e else "irc_native")
        for other in ("onnxruntime", "tract"):
            assert r[f"irc/{other}"] == pytest.approx(e[via]["median_us"] / e[other]["median_us"], abs=1e-3)
        assert r["rss irc/onnxruntime"] == pytest.approx(e[via]["peak_rss_mb"] / e["onnxruntime"]["peak_rss_mb"],
                                                         abs=1e-3)


def test_build_recorded_with_the_emit_options(bench_json):
    build = bench_json["irc"]["build"]
    assert bench_json["irc"]["crate"] == "irc_bench_tiny_bench"
    assert build["build_seconds"] > 0 and build["binary_bytes"] > 10_000 and build["source_bytes"] > 0
    assert build["cached"] is False
    assert ("--cpu" in build["emit_flags"]) == emit_has("--cpu")
    assert "--level" not in build["emit_flags"]  # the bench measures the default optimization level
    assert build["python_binding"] == (emit_has("--python") and shutil.which("maturin") is not None)
    assert bench_json["settings"]["runs"] == RUNS and bench_json["machine"]["onnxruntime"]


def test_table_and_cached_rerun(bench_json, models, work, backend_before):
    ran = irc("bench", str(models["dynamic"]), "--batch", "2", "--threads", "2", "--runs", "6",
              "--against", "onnxruntime", "--work", str(work))
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    out = ran.stdout
    assert "every engine matches onnxruntime" in out
    if backend_state() == backend_before:  # else someone edited the backend meanwhile: a new crate
        assert "(cached)" in out  # same sources, same work dir: cargo and maturin are not rerun
    assert re.search(r"b2 t2 +irc (python|native)", out)
    ort_line = next(line for line in out.splitlines() if line.lstrip().startswith("onnxruntime"))
    assert re.search(r"\d\.\d\dx$", ort_line.rstrip())  # irc / onnxruntime
    assert not re.search(r"^\s+tract\s+[\d<]", out, re.MULTILINE)  # not asked for: not run


def test_fixed_batch_model_takes_its_own_batch(models, monkeypatch, capsys):
    code, err = irc_here(monkeypatch, capsys, "bench", str(models["fixed"]), "--batch", "2")
    assert code == 2 and err.startswith("error: --batch:") and "fixed batch size of 1" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["missing.onnx"], "no such file"),
    (["{model}", "--batch", "0,x"], "--batch: expected positive integers"),
    (["{model}", "--threads", "1,,2"], "--threads: expected positive integers"),
    (["{model}", "--against", "onnxruntime,openvino"], "--against: unknown engine 'openvino'"),
    (["{model}", "--runs", "0"], "--runs: expected a positive integer"),
    (["{keras}"], "convert it first: irc import"),
    (["{model}", "--work", "{foreign}"], "is not an irc bench directory"),
])
def test_bad_input_is_one_error_line(models, tmp_path, monkeypatch, capsys, args, message):
    keras = tmp_path / "model.keras"
    keras.write_bytes(b"not used")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    subst = {"model": str(models["dynamic"]), "keras": str(keras), "foreign": str(foreign)}
    code, err = irc_here(monkeypatch, capsys, "bench", *[a.format(**subst) for a in args])
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_tract_missing_is_a_user_error(models):
    ran = irc("bench", str(models["dynamic"]), "--against", "tract", prelude="import sys; sys.modules['tract'] = None")
    assert ran.returncode == 2
    assert ran.stderr.strip() == "error: --against tract: the tract package is not installed (pip install tract)"
