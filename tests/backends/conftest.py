"""One cargo build for all op-family models, one for the model-zoo CNNs (session fixtures)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("CARGO_TARGET_DIR", str(REPO / ".cargo-target"))

needs_cargo = pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")


def run_models(models: dict, root: Path, name: str, batch_feeds=None) -> dict:
    """Emit all models into one crate, build, run; returns key -> (case, expected outputs)."""
    from irc.backends.rust.multi import Case, build_and_run
    from irc.ir.onnx_io import from_onnx
    from irc.oracle import random_inputs, run

    cases, expected = [], {}
    for key, model in models.items():
        graph = from_onnx(model)
        feeds = random_inputs(graph, batch=2, seed=7)
        feeds = {k: _domain_safe(key, v) for k, v in feeds.items()}
        expected[key] = run(model, feeds)
        cases.append(Case(key, graph, list(feeds.values())))
    build_and_run(cases, root, name=name)
    return {c.key: (c, expected[c.key]) for c in cases}


def _domain_safe(key: str, v: np.ndarray) -> np.ndarray:
    """Inputs inside the domain of ops like Sqrt and Log (the oracle's inputs are standard normal)."""
    if v.dtype.kind == "f" and any(k in key for k in ("sqrt", "log", "pow")):
        return np.abs(v) + 0.1
    return v


@pytest.fixture(scope="session")
def op_results(tmp_path_factory):
    from .op_models import build

    models = {f"m_{fam}_{k}": m for fam, ms in build().items() for k, m in ms.items()}
    return run_models(models, tmp_path_factory.mktemp("ops"), "irc_test_ops")
