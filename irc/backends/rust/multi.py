"""Many models in one crate: one module per model, one harness binary, one cargo build.

The conformance suite and the tests emit hundreds of small models; building a
crate for each would cost hours. Here each model becomes `src/<key>.rs`, its
weights and inputs go to `<root>/<key>/`, and one harness binary runs them all,
catching panics per model. A module that fails to compile is dropped and the
crate rebuilt, so one bad model cannot hide the others' results.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...ir import Graph
from .crate import copy_runtime
from .emitter import MODULE_PRELUDE, EmitError, emit_model, write_weights
from .prepare import prepare

HARNESS_CARGO = """[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
ndarray = "0.16"
rayon = "1"

[features]
blas = []
portable = []
no-avx = []

[profile.fast]
inherits = "release"
opt-level = 1
lto = false
codegen-units = 16
incremental = true
debug = false
"""

LIB_HEADER = """#![allow(clippy::all, dead_code, unused_variables, unused_imports)]
pub mod runtime;
"""


@dataclass
class Case:
    """One model with its feeds; ``error`` is set by emission, build or run failures."""

    key: str
    graph: Graph
    feeds: list[np.ndarray]
    batch: int | None = None
    outputs: list[np.ndarray] | None = None
    output_names: list[str] = field(default_factory=list)
    error: str | None = None
    stage: str = ""


def _emit_case(case: Case, src_dir: Path, data_dir: Path) -> None:
    shutil.rmtree(data_dir / case.key, ignore_errors=True)  # no stale results from an earlier run
    (src_dir / f"{case.key}.rs").unlink(missing_ok=True)
    try:
        prepared = prepare(case.graph, batch=case.batch)
        src = emit_model(prepared, "Model")
    except EmitError as exc:
        case.error, case.stage = "; ".join(f"{i.op_type}: {i.reason}" for i in exc.items[:3]), "emit"
        return
    except Exception as exc:  # a model the preparation cannot handle is one failed case
        case.error, case.stage = f"{type(exc).__name__}: {exc}"[:300], "prepare"
        return
    case.output_names = src.output_names
    (src_dir / f"{case.key}.rs").write_text(MODULE_PRELUDE + src.body)
    cdir = data_dir / case.key
    cdir.mkdir(parents=True, exist_ok=True)
    (cdir / "weights.bin").write_bytes(write_weights(src.weights))
    for i, array in enumerate(case.feeds):
        np.save(cdir / f"input_{i}.npy", array)


def _write_crate(root: Path, name: str, cases: list[Case]) -> None:
    src = root / "src"
    (root / "Cargo.toml").write_text(HARNESS_CARGO.format(name=name))
    lib = LIB_HEADER + "".join(f"pub mod {c.key};\n" for c in cases)
    (src / "lib.rs").write_text(lib)
    calls = "".join(
        f'    if want("{c.key}") {{\n'
        f'        cli::run_case_dir(&root.join("{c.key}"), {len(c.feeds)}, |p: &Path| {name}::{c.key}::Model::load(p), '
        f'|m: &{name}::{c.key}::Model, i| m.run_any(i));\n'
        f'    }}\n'
        for c in cases)
    main = (f"use {name}::runtime::cli;\nuse std::path::Path;\n\n"
            "fn main() {\n"
            "    std::panic::set_hook(Box::new(|_| {}));\n"
            "    let args: Vec<String> = std::env::args().collect();\n"
            "    if args.get(1).map(String::as_str) == Some(\"--isa\") {\n"
            f"        println!(\"{{}}\", {name}::runtime::cpu::widest());\n"
            "        return;\n"
            "    }\n"
            "    let root = Path::new(&args[1]).to_path_buf();\n"
            "    let only: Vec<String> = args[2..].to_vec();\n"
            "    let want = |k: &str| only.is_empty() || only.iter().any(|o| o == k);\n"
            f"{calls}}}\n")
    (src / "main.rs").write_text(main)


def _failed_modules(stderr: str) -> set[str]:
    return set(re.findall(r"--> src/(case_\w+|m_\w+)\.rs", stderr))


def build_and_run(cases: list[Case], root: Path, name: str = "irc_multi", env: dict | None = None,
                  timeout: int = 3000, log=print, features: tuple[str, ...] = ()) -> None:
    """Emit, build and run every case; fills ``outputs`` or ``error`` of each.

    ``features``: cargo features of the crate to build with (e.g. ``("blas",)``).
    """
    from ...verify import cargo_env

    env = env or cargo_env()
    src_dir, data_dir = root / "src", root / "data"
    src_dir.mkdir(parents=True, exist_ok=True)
    copy_runtime(src_dir / "runtime")
    for case in cases:
        _emit_case(case, src_dir, data_dir)
    live = [c for c in cases if c.error is None]
    binary = None
    for _attempt in range(6):
        _write_crate(root, name, live)
        feature_args = ["--features", ",".join(features)] if features else []
        proc = subprocess.run(["cargo", "build", "--profile", "fast", "--quiet", *feature_args, "--manifest-path",
                               str(root / "Cargo.toml")], capture_output=True, text=True, env=env)
        if proc.returncode == 0:
            binary = Path(env["CARGO_TARGET_DIR"]) / "fast" / name
            break
        bad = _failed_modules(proc.stderr)
        if not bad:
            log(proc.stderr[-3000:])
            break
        for c in live:
            if c.key in bad:
                first = re.search(rf"(error[^\n]*)\n\s*--> src/{c.key}\.rs", proc.stderr)
                c.error, c.stage = (first.group(1) if first else "compile error")[:300], "build"
        live = [c for c in live if c.error is None]
        log(f"  dropped {len(bad)} module(s) that do not compile; rebuilding")
    if binary is None:
        for c in live:
            c.error, c.stage = "crate did not build", "build"
        return
    _run_all(binary, live, data_dir, timeout)


def _run_all(binary: Path, cases: list[Case], data_dir: Path, timeout: int) -> None:
    pending = list(cases)
    while pending:
        try:
            subprocess.run([str(binary), str(data_dir)] + [c.key for c in pending],
                           capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        still = []
        crashed = False
        for c in pending:
            cdir = data_dir / c.key
            if (cdir / "error.txt").exists():
                c.error, c.stage = (cdir / "error.txt").read_text()[:300], "run"
            elif (cdir / "out_0.npy").exists() or (not c.output_names and cdir.exists() and crashed is False
                                                     and False):
                c.outputs = [np.load(cdir / f"out_{i}.npy") for i in range(len(c.output_names))]
            elif not crashed:
                crashed = True  # the first case without a result took the process down
                c.error, c.stage = "crashed (abort, stack overflow or timeout)", "run"
            else:
                still.append(c)
        pending = still
