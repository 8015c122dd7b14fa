"""The irc engine of the bench: emit the crate, build it, verify it, time it.

This is the hook to the Rust backend (issue 5). It is used only when ``irc emit`` exists
(``available()`` says why not otherwise), so the bench runs onnxruntime against tract
before the backend lands. The generated crate's CLI contract relied on:

* ``--input NAME=FILE.npy`` (one per input), ``--output-dir DIR`` writing one ``.npy`` per
  output plus ``DIR/outputs.json`` (ONNX output name -> file);
* ``--bench N``: N runs after a warm-up, last line ``bench: runs=N median_us=X p90_us=Y``;
* threads through ``RAYON_NUM_THREADS``.

With ``irc emit --python`` (a PyO3 extension built by maturin), ``engines.py``'s
``irc_python`` worker times it through one Python call like the other engines.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from procs import run_measured

BENCH_LINE = re.compile(r"bench: runs=(\d+) median_us=([\d.eE+-]+) p90_us=([\d.eE+-]+)")


@dataclass
class IrcBuild:
    crate: Path
    binary: Path
    build_seconds: float
    binary_bytes: int
    source_bytes: int
    python_module: Path | None = None
    notes: list[str] = field(default_factory=list)


def _irc(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    exe = shutil.which("irc")
    cmd = [exe, *args] if exe else ["python", "-m", "irc.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def available() -> tuple[bool, str]:
    """Whether ``irc emit --target rust`` exists in this checkout, and if not why."""
    try:
        help_text = _irc("emit", "--help", timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"irc CLI not runnable: {exc}"
    if help_text.returncode != 0 or "--target" not in help_text.stdout:
        return False, "`irc emit --target rust` is not available yet (Rust backend, issue 5)"
    return True, "python binding" if "--python" in help_text.stdout else "native CLI only"


def prepare(model: Path, work: Path, name: str) -> IrcBuild:
    """Emit and release-build the crate for ``model``; raises RuntimeError with the reason."""
    # A prefix keeps the crate's binary apart from other crates in a shared CARGO_TARGET_DIR
    # (tests emit crates called `mlp` too, and would overwrite target/release/mlp).
    crate_name = f"irc_bench_{name}"
    crate = work / "irc" / crate_name
    python = "--python" in _irc("emit", "--help", timeout=60).stdout
    args = ["emit", str(model), "--target", "rust", "-o", str(crate), "--name", crate_name, "--force"]
    emitted = _irc(*args, *(["--python"] if python else []))
    if emitted.returncode != 0:
        raise RuntimeError(f"irc emit failed: {(emitted.stderr or emitted.stdout).strip().splitlines()[-1:]}")
    started = time.perf_counter()
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", str(Path(__file__).resolve().parent.parent / ".cargo-target"))
    built = subprocess.run(
        ["cargo", "build", "--release", "--message-format=json-render-diagnostics"],
        cwd=crate, capture_output=True, text=True, timeout=1800, env=env,
    )
    seconds = time.perf_counter() - started
    if built.returncode != 0:
        raise RuntimeError(f"cargo build failed: {built.stderr.strip().splitlines()[-1:]}")
    binary = _executable(built.stdout)
    source = sum(p.stat().st_size for p in (crate / "src").rglob("*.rs"))
    result = IrcBuild(crate, binary, seconds, binary.stat().st_size, source)
    if python and (crate / "python" / "pyproject.toml").exists():
        result.python_module = _build_python(crate, result.notes, env)
    return result


def _executable(cargo_json: str) -> Path:
    for line in cargo_json.splitlines():
        if line.startswith("{"):
            msg = json.loads(line)
            if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
                return Path(msg["executable"])
    raise RuntimeError("cargo built no executable")


def _build_python(crate: Path, notes: list[str], env: dict[str, str]) -> Path | None:
    """Build the binding (``crate/python``, maturin) and install it into ``crate/pyinstall``.

    The ``irc_python`` worker puts that folder first on ``sys.path`` and imports the module
    by the crate's name.
    """
    wheels = crate / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    built = subprocess.run(["maturin", "build", "--release", "--quiet", "-o", str(wheels)], cwd=crate / "python",
                           capture_output=True, text=True, timeout=1800, env=env)
    if built.returncode != 0:
        first_error = next((line for line in built.stderr.splitlines() if line.startswith("error")), "")
        notes.append(f"maturin build failed: {first_error or built.stderr.strip()[-300:]}")
        return None
    wheel = sorted(wheels.glob("*.whl"))[-1]
    target = crate / "pyinstall"
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                    "--target", str(target), str(wheel)], check=True, capture_output=True, timeout=600)
    return target


def _input_args(names: list[str], input_dir: Path) -> list[str]:
    return [arg for i, name in enumerate(names) for arg in ("--input", f"{name}={input_dir / f'{i}.npy'}")]


def verify(build: IrcBuild, names: list[str], input_dir: Path, out_dir: Path,
           output_names: list[str]) -> list[np.ndarray]:
    """Run the crate's CLI once; its outputs in the model's output order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ran = subprocess.run([str(build.binary), *_input_args(names, input_dir), "--output-dir", str(out_dir)],
                         capture_output=True, text=True, timeout=600)
    if ran.returncode != 0:
        raise RuntimeError(f"irc binary failed: {ran.stderr.strip().splitlines()[-1:]}")
    files = json.loads((out_dir / "outputs.json").read_text())
    return [np.load(out_dir / files[name]) for name in output_names]


def bench_native(build: IrcBuild, names: list[str], input_dir: Path, runs: int,
                 threads: int) -> tuple[float, float, float | None]:
    """One ``--bench runs`` process: (median_us, p90_us, its peak RSS in MiB)."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    code, out, err, rss_mb = run_measured([str(build.binary), *_input_args(names, input_dir), "--bench", str(runs)],
                                          env=env)
    lines = out.strip().splitlines()
    match = BENCH_LINE.search(lines[-1]) if lines else None
    if code != 0 or not match:
        raise RuntimeError(f"irc --bench failed: {(err or out).strip().splitlines()[-1:]}")
    return float(match.group(2)), float(match.group(3)), rss_mb
