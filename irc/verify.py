"""`irc verify`: emit a crate, build it with cargo, run it, compare with onnxruntime.

The same seeded inputs go to the crate's CLI and to onnxruntime; each output is
compared with per-dtype tolerances (max abs, max rel, ULP). ``bisect`` exposes
every intermediate as an output and names the first node whose value diverges.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import IrcError
from .ir import Graph
from .oracle import OutputDiff, Tolerance, compare, random_inputs, tolerance_for

DEFAULT_TARGET_DIR = Path(__file__).resolve().parent.parent / ".cargo-target"


@dataclass
class VerifyResult:
    ok: bool
    diffs: list[OutputDiff]
    crate: Path
    build_seconds: float = 0.0
    first_divergence: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "crate": str(self.crate), "build_seconds": round(self.build_seconds, 2),
                "outputs": [d.as_dict() for d in self.diffs], "first_divergence": self.first_divergence}


def cargo_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", str(DEFAULT_TARGET_DIR))
    return env


def cargo_build(crate: Path, profile: str = "release", quiet: bool = True) -> Path:
    """Build a crate; returns the path of its binary. Raises IrcError with rustc's first error."""
    if shutil.which("cargo") is None:
        raise IrcError("cargo not found: install Rust (https://rustup.rs)")
    cmd = ["cargo", "build", "--profile", profile, "--manifest-path", str(crate / "Cargo.toml")]
    if quiet:
        cmd.append("--quiet")
    # cwd=crate: cargo reads the crate's .cargo/config.toml (written by `--cpu native`) from there.
    proc = subprocess.run(cmd, capture_output=True, text=True, env=cargo_env(), cwd=crate)
    if proc.returncode != 0:
        first = next((ln for ln in proc.stderr.splitlines() if ln.startswith("error")), proc.stderr[-500:])
        raise IrcError(f"cargo build failed in {crate}: {first}")
    target = Path(cargo_env()["CARGO_TARGET_DIR"])
    name = _crate_name(crate)
    return target / ("release" if profile == "release" else profile) / name


def _crate_name(crate: Path) -> str:
    for line in (crate / "Cargo.toml").read_text().splitlines():
        if line.startswith("name = "):
            return json.loads(line.split("=", 1)[1].strip())
    raise IrcError(f"{crate}: no package name in Cargo.toml")


def run_crate(binary: Path, feeds: dict[str, np.ndarray], workdir: Path) -> dict[str, np.ndarray]:
    """Run a built crate's CLI on ``feeds``; outputs by ONNX name (from outputs.json)."""
    args = [str(binary)]
    indir = workdir / "inputs"
    indir.mkdir(parents=True, exist_ok=True)
    for i, (name, array) in enumerate(feeds.items()):
        path = indir / f"input_{i}.npy"
        np.save(path, array)
        args += ["--input", f"{name}={path}"]
    outdir = workdir / "outputs"
    args += ["--output-dir", str(outdir)]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise IrcError(f"the generated binary failed: {proc.stderr.strip().splitlines()[-1:]}")
    mapping = json.loads((outdir / "outputs.json").read_text())
    return {name: np.load(outdir / file) for name, file in mapping.items()}


def load_inputs(graph: Graph, paths: list[Path]) -> dict[str, np.ndarray]:
    names = [v.name for v in graph.inputs if v.name not in graph.initializers]
    if len(paths) != len(names):
        raise IrcError(f"--inputs: {len(paths)} file(s) given, the model has {len(names)} input(s)")
    feeds = {}
    for name, path in zip(names, paths, strict=True):
        try:
            feeds[name] = np.load(path)
        except (OSError, ValueError) as exc:
            raise IrcError(f"{path}: cannot read .npy ({exc})") from None
    return feeds


def verify(graph: Graph, *, out: Path | None = None, inputs: list[Path] | None = None,
           batch: int | None = None, atol: float | None = None, rtol: float | None = None,
           seed: int = 0, bisect: bool = False, force: bool = False) -> VerifyResult:
    """Emit, build, run and compare; ``ok`` is False on any output out of tolerance."""
    import time

    from .backends.rust import EmitOptions, emit_crate
    from .ir.onnx_io import to_onnx
    from .oracle import run as ort_run

    model = to_onnx(graph)
    feeds = load_inputs(graph, inputs) if inputs else random_inputs(graph, batch or 2, seed)
    expected = ort_run(model, feeds)
    workdir = Path(tempfile.mkdtemp(prefix="irc-verify-"))
    crate = Path(out) if out is not None else workdir / "crate"
    emit_crate(graph, crate, EmitOptions(batch=None), force=force or out is None)
    start = time.perf_counter()
    binary = cargo_build(crate)
    build_seconds = time.perf_counter() - start
    actual = run_crate(binary, feeds, workdir / "run")
    diffs = _compare(expected, actual, atol, rtol)
    result = VerifyResult(all(d.ok for d in diffs), diffs, crate, build_seconds)
    if bisect and not result.ok:
        result.first_divergence = bisect_graph(graph, feeds, workdir / "bisect", atol, rtol)
    return result


def _compare(expected, actual, atol, rtol) -> list[OutputDiff]:
    diffs = []
    for name, exp in expected.items():
        tol = None
        if atol is not None or rtol is not None:
            base = tolerance_for(np.asarray(exp).dtype)
            tol = Tolerance(base.atol if atol is None else atol, base.rtol if rtol is None else rtol)
        diffs.extend(compare({name: exp}, actual, tol))
    return diffs


def bisect_graph(graph: Graph, feeds: dict[str, np.ndarray], workdir: Path,
                 atol: float | None, rtol: float | None) -> str | None:
    """Expose every intermediate as an output, run both sides, name the first divergent node."""
    from onnx import helper

    from .backends.rust import EmitOptions, emit_crate
    from .ir.onnx_io import from_onnx, to_onnx
    from .oracle import run as ort_run

    model = to_onnx(graph)
    existing = {o.name for o in model.graph.output}
    order = []
    for node in model.graph.node:
        for name in node.output:
            if name and name not in existing:
                model.graph.output.append(helper.make_empty_tensor_value_info(name))
                order.append((node.name or node.op_type, name))
                existing.add(name)
    expected = ort_run(model, feeds, optimize=False)
    crate = workdir / "crate"
    emit_crate(from_onnx(model), crate, EmitOptions(level=0), force=True)
    actual = run_crate(cargo_build(crate), feeds, workdir / "run")
    for node_name, value in order:
        if value not in expected:
            continue
        diff = _compare({value: expected[value]}, actual, atol, rtol)[0]
        if not diff.ok:
            return f"{node_name} (output {value!r}: max abs {diff.max_abs:.3g}, max rel {diff.max_rel:.3g})"
    return None
