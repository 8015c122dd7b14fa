"""The irc engine of the bench: emit the crate, build it, verify it, time its native loop.

The crate is emitted by the ``irc emit`` command line (a subprocess of this interpreter),
so the bench measures exactly what users get: the default optimization level, plus the
options ``irc emit --help`` offers at run time (``--python`` when maturin is installed,
``--cpu native`` when the backend has it). The generated crate's CLI contract relied on:

* ``--input NAME=FILE.npy`` (one per input), ``--output-dir DIR`` writing one ``.npy`` per
  output plus ``DIR/outputs.json`` (ONNX output name -> file);
* ``--bench N``: N runs after a warm-up, last line ``bench: runs=N median_us=X p90_us=Y``;
* threads through ``RAYON_NUM_THREADS``.

Builds are cached: the crate is emitted into a staging folder and only files whose bytes
changed are copied over the previous crate, so cargo rebuilds nothing when the sources are
the same, and ``bench-build.json`` keeps the build time measured when they were built.
"""

from __future__ import annotations

import functools
import hashlib
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

from .procs import run_measured

BENCH_LINE = re.compile(r"bench: runs=(\d+) median_us=([\d.eE+-]+) p90_us=([\d.eE+-]+)")
CRATE_PREFIX = "irc_bench_"
"""Keeps the bench's binaries apart from other crates in a shared CARGO_TARGET_DIR (tests
emit crates called `mlp` too, and would overwrite target/release/mlp)."""
BUILD_RECORD = "bench-build.json"
BINARY_DIR = "bin"
BUILD_PRODUCTS = {"wheels", "pyinstall", "target", BINARY_DIR, BUILD_RECORD}
"""Top-level entries of a crate folder that the build makes, not the emitter."""


@dataclass
class IrcBuild:
    crate: Path
    binary: Path
    build_seconds: float
    binary_bytes: int
    source_bytes: int
    python_module: Path | None = None
    python_build_seconds: float | None = None
    cached: bool = False
    emit_flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The ``builds`` entry of the results."""
        return {"build_seconds": round(self.build_seconds, 1), "binary_bytes": self.binary_bytes,
                "source_bytes": self.source_bytes, "python_binding": bool(self.python_module),
                "python_build_seconds": _round(self.python_build_seconds), "cached": self.cached,
                "emit_flags": self.emit_flags, "notes": self.notes}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def crate_name(model_name: str) -> str:
    """A Rust-safe crate name for the bench of ``model_name``."""
    return CRATE_PREFIX + re.sub(r"\W", "_", model_name.lower(), flags=re.ASCII)


def python_env(**extra: str) -> dict[str, str]:
    """The environment of a child Python that must import this irc package, installed or not."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{path}" if path else root, **extra)


def _irc(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """The ``irc`` command line of this interpreter's irc package."""
    return subprocess.run([sys.executable, "-m", "irc.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=python_env())


@functools.cache
def emit_help() -> str:
    """``irc emit --help``, read once: which emit options this checkout has."""
    try:
        ran = _irc("emit", "--help", timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return ran.stdout if ran.returncode == 0 else ""


def _has_option(name: str) -> bool:
    return re.search(rf"{re.escape(name)}(?![\w-])", emit_help()) is not None


def available() -> tuple[bool, str]:
    """Whether ``irc emit --target rust`` can run here, and if not why."""
    if not _has_option("--target"):
        return False, "`irc emit --target rust` is not runnable"
    if shutil.which("cargo") is None:
        return False, "cargo not found: install Rust (https://rustup.rs)"
    return True, "python binding" if _has_option("--python") else "native CLI only"


def emit_flags(python: bool) -> list[str]:
    """Options given to ``irc emit`` (never ``--level``: the bench measures the default).

    ``--python`` when wanted and buildable (maturin installed); ``--cpu native`` whenever the
    backend offers it, so the crate is compiled for the CPU it is timed on, as onnxruntime's
    and tract's kernels are chosen at run time for it.
    """
    flags = []
    if python and _has_option("--python") and shutil.which("maturin"):
        flags.append("--python")
    if _has_option("--cpu"):
        flags += ["--cpu", "native"]
    return flags


def prepare(model: Path, work: Path, name: str, python: bool = True) -> IrcBuild:
    """Emit and release-build the crate for ``model``; raises RuntimeError with the reason."""
    from ..verify import cargo_env

    # Absolute: cargo and maturin run inside the crate, where a relative path means another place.
    work = work.resolve()
    crate = work / "irc" / crate_name(name)
    staging = work / "irc" / ".staging" / crate.name
    flags = emit_flags(python)
    emitted = _irc("emit", str(model), "--target", "rust", "-o", str(staging), "--name", crate.name,
                   "--force", "--json", *flags)
    if emitted.returncode != 0:
        raise RuntimeError(f"irc emit failed: {_emit_failure(emitted)}")
    source_hash = _tree_hash(staging)
    _sync_tree(staging, crate)
    record = _read_record(crate)
    env = cargo_env()
    binary = crate / BINARY_DIR / crate.name
    cached = record.get("source_hash") == source_hash and binary.is_file()
    seconds = record["build_seconds"] if cached else _cargo_build(crate, binary, env)
    source = sum(p.stat().st_size for p in (crate / "src").rglob("*.rs"))
    result = IrcBuild(crate, binary, seconds, binary.stat().st_size, source, cached=cached, emit_flags=flags)
    if "--python" in flags and (crate / "python" / "pyproject.toml").exists():
        if cached and record.get("python_build_seconds") and (crate / "pyinstall").is_dir():
            result.python_module, result.python_build_seconds = crate / "pyinstall", record["python_build_seconds"]
        else:
            started = time.perf_counter()
            result.python_module = _build_python(crate, result.notes, env)
            result.python_build_seconds = time.perf_counter() - started if result.python_module else None
    _write_record(crate, source_hash, result)
    return result


def _emit_failure(emitted: subprocess.CompletedProcess) -> str:
    """Why ``irc emit --json`` failed: the unsupported nodes it lists, else its error line."""
    try:
        unsupported = json.loads(emitted.stdout)["unsupported"]
    except (ValueError, KeyError, TypeError):
        return _last_line(emitted.stderr or emitted.stdout)
    names = ", ".join(f"{u['op_type']} ({u['node']})" for u in unsupported[:5])
    more = f" and {len(unsupported) - 5} more" if len(unsupported) > 5 else ""
    return f"{len(unsupported)} unsupported node(s): {names}{more}"


def _cargo_build(crate: Path, binary: Path, env: dict[str, str]) -> float:
    """``cargo build --release``; its executable copied to ``binary``. Returns the build time.

    The copy is what the bench runs: another build in the shared CARGO_TARGET_DIR cannot
    replace it mid-run, and a cached rerun needs no cargo (which waits for the target
    directory's lock while any other build holds it).
    """
    # The crate's own compilation is the figure: an identical crate built earlier into the
    # shared target dir would make cargo skip it (0 s). Dependencies stay compiled.
    os.utime(crate / "src" / "lib.rs")
    started = time.perf_counter()
    built = subprocess.run(["cargo", "build", "--release", "--message-format=json-render-diagnostics"],
                           cwd=crate, capture_output=True, text=True, timeout=1800, env=env)
    seconds = time.perf_counter() - started
    if built.returncode != 0:
        raise RuntimeError(f"cargo build failed: {_last_line(built.stderr)}")
    binary.parent.mkdir(exist_ok=True)
    shutil.copy2(_executable(built.stdout), binary)
    return seconds


def _last_line(text: str) -> str:
    """The most telling line of a tool's output: its first ``error`` line, else its last line."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return next((line for line in lines if line.lower().startswith("error")), lines[-1] if lines else "")


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _sync_tree(src: Path, dst: Path) -> None:
    """Make ``dst`` hold ``src``'s files, rewriting only those whose bytes differ.

    cargo decides what to rebuild from modification times, so an unchanged file must keep
    its old one. Files the emitter no longer writes go; build products and lock files stay.
    """
    wanted = {p.relative_to(src) for p in src.rglob("*") if p.is_file()}
    for rel in wanted:
        target = dst / rel
        if not target.is_file() or target.read_bytes() != (src / rel).read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, target)
    for path in [p for p in dst.rglob("*") if p.is_file()]:
        rel = path.relative_to(dst)
        if rel not in wanted and rel.parts[0] not in BUILD_PRODUCTS and rel.name != "Cargo.lock":
            path.unlink()


def _read_record(crate: Path) -> dict:
    try:
        return json.loads((crate / BUILD_RECORD).read_text())
    except (OSError, ValueError):
        return {}


def _write_record(crate: Path, source_hash: str, build: IrcBuild) -> None:
    record = {"source_hash": source_hash, "build_seconds": build.build_seconds,
              "python_build_seconds": build.python_build_seconds}
    (crate / BUILD_RECORD).write_text(json.dumps(record) + "\n")


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
        notes.append(f"maturin build failed: {_last_line(built.stderr)}")
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
        raise RuntimeError(f"irc binary failed: {_last_line(ran.stderr)}")
    files = json.loads((out_dir / "outputs.json").read_text())
    return [np.load(out_dir / files[name]) for name in output_names]


def bench_native(build: IrcBuild, names: list[str], input_dir: Path, runs: int,
                 threads: int, measure_rss: bool = True) -> tuple[float, float, float | None]:
    """One ``--bench runs`` process: (median_us, p90_us, its peak RSS in MiB).

    ``measure_rss=False`` runs it without the RSS poller (peak RSS None): the poller wakes
    every 2 ms in this process and costs ~5% of a core, which a 2-thread native loop on a
    2-core machine loses (the harness times with it off and measures memory in a separate run).
    """
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    cmd = [str(build.binary), *_input_args(names, input_dir), "--bench", str(runs)]
    if measure_rss:
        code, out, err, rss_mb = run_measured(cmd, env=env)
    else:
        ran = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
        code, out, err, rss_mb = ran.returncode, ran.stdout, ran.stderr, None
    lines = out.strip().splitlines()
    match = BENCH_LINE.search(lines[-1]) if lines else None
    if code != 0 or not match:
        raise RuntimeError(f"irc --bench failed: {_last_line(err or out)}")
    return float(match.group(2)), float(match.group(3)), rss_mb
