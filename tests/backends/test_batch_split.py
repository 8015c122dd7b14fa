"""Batch-parallel `forward` (irc/backends/rust/batch.py, `rt::par::batch_parallel`): separable
models run with RAYON_NUM_THREADS=2 at batch 2, 3 and 8 (even and uneven chunks) match
onnxruntime, and at batch 8 (chunks of 4 items) the same crate run with one thread bit for
bit. Chunks of 1-2 items may round differently from the whole batch: a one-item chunk takes
the batch-1 kernels (GEMV, the blocked recurrent step), which order their sums differently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .conftest import needs_cargo
from .test_batch_analysis import (
    cnn_model,
    embedding_model,
    lstm_model,
    transformer_model,
    unsplit_input_model,
)

MODELS = {"bs_cnn": cnn_model, "bs_transformer": transformer_model, "bs_lstm": lstm_model,
          "bs_unsplit_input": unsplit_input_model, "bs_embedding": embedding_model}
BATCHES = (2, 3, 8)


def _feeds(graph, batch: int, key: str) -> dict[str, np.ndarray]:
    from irc.oracle import random_inputs

    feeds = random_inputs(graph, batch=batch, seed=11)
    if key == "bs_lstm":  # time-major: the batch is axis 1
        rng = np.random.default_rng(11)
        feeds = {"x": rng.standard_normal((5, batch, 3)).astype(np.float32)}
    if key == "bs_embedding":
        feeds = {"ids": np.random.default_rng(11).integers(0, 10, (batch, 7)).astype(np.int64)}
    return feeds


@needs_cargo
def test_batch_split_matches_onnxruntime_and_one_thread(tmp_path: Path, monkeypatch):
    from irc.backends.rust.multi import Case, build_and_run
    from irc.ir.onnx_io import from_onnx
    from irc.oracle import compare, run

    models = {key: build() for key, build in MODELS.items()}
    outputs = {}
    for threads in (2, 1):
        monkeypatch.setenv("RAYON_NUM_THREADS", str(threads))
        monkeypatch.setenv("IRC_MIN_CHUNK_WORK", "1")  # the models are tiny: split them anyway
        cases, expected = [], {}
        for key, model in models.items():
            for batch in BATCHES:
                graph = from_onnx(model)
                feeds = _feeds(graph, batch, key)
                ck = f"{key}_b{batch}"
                expected[ck] = run(model, feeds)
                cases.append(Case(ck, graph, list(feeds.values())))
        logs: list[str] = []
        build_and_run(cases, tmp_path / "crate", name="irc_batch_split", log=logs.append)
        for case in cases:
            assert case.error is None, f"{case.key}: {case.stage}: {case.error}\n" + "\n".join(logs)[-2000:]
            got = dict(zip(case.output_names, case.outputs, strict=True))
            diffs = compare(expected[case.key], got)
            assert all(d.ok for d in diffs), f"{case.key} ({threads} threads): {diffs}"
            outputs[(case.key, threads)] = case.outputs
    src = "\n".join(p.read_text() for p in (tmp_path / "crate" / "src").glob("bs_*.rs"))
    assert src.count("rt::par::batch_parallel(") == len(models) * len(BATCHES), "every model should split"
    for key in models:
        ck = f"{key}_b8"
        for two, one in zip(outputs[(ck, 2)], outputs[(ck, 1)], strict=True):
            assert np.array_equal(two.view(np.uint8), one.view(np.uint8)), f"{ck}: 2 threads differ from 1"
