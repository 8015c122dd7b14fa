"""The runtime GEMM (irc/backends/rust/runtime/gemm.rs) through its cargo test crate, bench/gemm."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CRATE = REPO / "bench" / "gemm"


# This checkout's own target dir: cargo names a path crate's artifacts independently of its
# location, so copies of the repo building bench/gemm into one shared target dir would take
# each other's builds as fresh (seen: a snapshot's older par.rs linked into this test).
TARGET = REPO / ".cargo-target" / "gemm-bench"


def cargo(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET))
    return subprocess.run(["cargo", *args], cwd=CRATE, env=env, capture_output=True, text=True, timeout=timeout)


def test_sgemm_matches_naive_triple_loop():
    """Random shapes, strides, transposed views, alpha/beta, epilogues, every kernel the CPU has;
    splits over threads; the runtime's thread helpers (par.rs)."""
    ran = cargo("test", "--release", "--quiet")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "13 passed" in ran.stdout, ran.stdout[-2000:]
    assert "3 passed" in ran.stdout, ran.stdout[-2000:]  # tests/par.rs: the thread helpers


def test_gemm_bench_reports_gflops_and_peak():
    ran = cargo("run", "--release", "--quiet", "--bin", "gemm-bench", "--", "--size", "96x80x70",
                "--seconds", "0.05")
    assert ran.returncode == 0, ran.stderr[-2000:]
    report = json.loads(ran.stdout)
    assert report["peak"]["gflops"] > 0
    (row,) = report["sgemm"]
    assert (row["m"], row["n"], row["k"]) == (96, 80, 70)
    assert set(row["gflops_best"]) >= {f"irc_{report['detected_isa']}", "ndarray_matrixmultiply"}
    assert all(v > 0 for v in row["gflops_best"].values())


def _openblas_installed() -> bool:
    listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True) if shutil.which("ldconfig") else None
    return listing is not None and "libopenblas.so " in listing.stdout


@pytest.mark.skipif(not _openblas_installed(), reason="system OpenBLAS missing: `make install` installs it")
def test_blas_feature_routes_sgemm_and_benches_openblas():
    """With `--features blas`, sgemm_ex goes to cblas_sgemm: the random-layout tests still
    pass against the f64 loop, and the micro-benchmark gains an `openblas` column."""
    ran = cargo("test", "--release", "--quiet", "--features", "blas")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "13 passed" in ran.stdout, ran.stdout[-2000:]
    bench = cargo("run", "--release", "--quiet", "--features", "blas", "--bin", "gemm-bench", "--",
                  "--size", "64x48x40", "--seconds", "0.05")
    assert bench.returncode == 0, bench.stderr[-2000:]
    (row,) = json.loads(bench.stdout)["sgemm"]
    assert row["gflops_best"]["openblas"] > 0
