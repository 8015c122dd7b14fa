"""Helpers for the frontend tests: the CLI in this process (TensorFlow and PyTorch load once)
and as a subprocess (what a user runs), plus checks every imported model must pass."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)


def run_cli(*args) -> CliRun:
    """`irc ARGS...` through irc.cli.main in this process: same parsing, errors and exit codes."""
    from irc import cli

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["irc", *map(str, args)]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
        cli._state["debug"] = False
    return CliRun(code, out.getvalue(), err.getvalue())


def run_subprocess(*args, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m irc.cli ARGS...` as a user runs it."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}"}
    return subprocess.run([sys.executable, "-m", "irc.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=env)


def assert_one_line_error(stderr: str, returncode: int, *needles: str) -> str:
    """Exit 2, no traceback, a single line on stderr containing every needle."""
    lines = [line for line in stderr.splitlines() if line.strip() and line.startswith("error:")]
    assert returncode == 2, stderr
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def assert_valid_import(path: Path) -> onnx.ModelProto:
    """The written model passes onnx.checker (with shape inference) and loads into the IR."""
    from irc.ir import load

    onnx.checker.check_model(str(path), full_check=True)
    graph = load(path)
    assert graph.num_ops > 0
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == [v.name for v in graph.inputs]
    return model


def ort_outputs(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """onnxruntime's outputs in graph order."""
    from irc import oracle

    result = oracle.run(str(path), feeds)
    return list(result.values())


def assert_close(expected: list[np.ndarray], actual: list[np.ndarray], atol: float = 1e-5,
                 rtol: float = 1e-4) -> None:
    assert len(expected) == len(actual)
    for e, a in zip(expected, actual, strict=True):
        np.testing.assert_allclose(a, e, atol=atol, rtol=rtol)
