"""One crate per thread count: the runs the thread tests compare (each against onnxruntime,
then 2 threads against 1 bit for bit)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


def run_per_thread_count(tmp_path: Path, monkeypatch, crate: str,
                         cases: dict[str, tuple[object, Callable]],
                         env: dict[str, str] | None = None) -> dict[tuple[str, int], list[np.ndarray]]:
    """Builds and runs `cases` (key -> (ONNX model, graph -> feeds)) with RAYON_NUM_THREADS 2
    and 1, asserts every output matches onnxruntime, and returns the outputs by (key, threads)."""
    from irc.backends.rust.multi import Case, build_and_run
    from irc.ir.onnx_io import from_onnx
    from irc.oracle import compare, run

    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    outputs = {}
    for threads in (2, 1):
        monkeypatch.setenv("RAYON_NUM_THREADS", str(threads))
        built, expected = [], {}
        for key, (model, make_feeds) in cases.items():
            graph = from_onnx(model)
            feeds = make_feeds(graph)
            expected[key] = run(model, feeds)
            built.append(Case(key, graph, list(feeds.values())))
        logs: list[str] = []
        build_and_run(built, tmp_path / "crate", name=crate, log=logs.append)
        for case in built:
            assert case.error is None, f"{case.key}: {case.stage}: {case.error}\n" + "\n".join(logs)[-2000:]
            got = dict(zip(case.output_names, case.outputs, strict=True))
            diffs = compare(expected[case.key], got)
            assert all(d.ok for d in diffs), f"{case.key} ({threads} threads): {diffs}"
            outputs[(case.key, threads)] = case.outputs
    return outputs


def assert_same_bits(outputs: dict[tuple[str, int], list[np.ndarray]], keys) -> None:
    for key in keys:
        for two, one in zip(outputs[(key, 2)], outputs[(key, 1)], strict=True):
            assert np.array_equal(two.view(np.uint8), one.view(np.uint8)), f"{key}: 2 threads differ from 1"
