"""Batch-parallel `forward` (irc/backends/rust/batch.py, `rt::batch::batch_parallel`): separable
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
from .thread_runs import assert_same_bits, run_per_thread_count

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
    cases = {f"{key}_b{batch}": (build(), lambda g, batch=batch, key=key: _feeds(g, batch, key))
             for key, build in MODELS.items() for batch in BATCHES}
    # The models are tiny: split them anyway.
    outputs = run_per_thread_count(tmp_path, monkeypatch, "irc_batch_split", cases, env={"IRC_MIN_CHUNK_WORK": "1"})
    src = "\n".join(p.read_text() for p in (tmp_path / "crate" / "src").glob("bs_*.rs"))
    assert src.count("rt::batch::batch_parallel(") == len(MODELS) * len(BATCHES), "every model should split"
    assert_same_bits(outputs, [f"{key}_b8" for key in MODELS])


@needs_cargo
def test_item_runs_match_onnxruntime(tmp_path: Path, monkeypatch):
    """`forward_items` (models whose one-item intermediates reach `ITEM_RUN_BYTES` run their
    items one at a time, on each thread's chunk): forced on for the test models (threshold 1
    byte), at batch 3 and 8, the LSTM's batch on axis 1; 1 and 2 threads match onnxruntime."""
    from irc.backends.rust import emitter

    monkeypatch.setattr(emitter, "ITEM_RUN_BYTES", 1)
    keys = ("bs_cnn", "bs_transformer", "bs_lstm")
    cases = {f"{key}_b{batch}": (MODELS[key](), lambda g, batch=batch, key=key: _feeds(g, batch, key))
             for key in keys for batch in (3, 8)}
    cases.update({f"bs_head_b{batch}": (head_model(), lambda g, batch=batch: _feeds(g, batch, "bs_head"))
                  for batch in (3, 8)})
    run_per_thread_count(tmp_path, monkeypatch, "irc_item_runs", cases, env={"IRC_MIN_CHUNK_WORK": "1"})
    src = "\n".join(p.read_text() for p in (tmp_path / "crate" / "src").glob("bs_*.rs"))
    assert src.count("fn forward_items(") == len(cases)
    # The CNNs' dense heads run once on the whole batch (`forward_tail`), the others have none.
    assert src.count("fn forward_tail(") == 4


def head_model():
    """Conv, global pool, Flatten, then a two-layer dense head (Gemm, Relu, Gemm): the tail
    `forward_items` batches across the items."""
    from .test_batch_analysis import F, N, _model, _w

    return _model([N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), N("Relu", ["c"], ["r"]),
                   N("GlobalAveragePool", ["r"], ["p"]), N("Flatten", ["p"], ["f"]),
                   N("Gemm", ["f", "fw", "fb"], ["h"], transB=1), N("Relu", ["h"], ["hr"]),
                   N("Gemm", ["hr", "gw", "gb"], ["y"], transB=1)],
                  [("x", F, ["N", 3, 9, 7])], [("y", F)],
                  [("w", _w(6, 3, 3, 3)), ("b", _w(6)), ("fw", _w(37, 6)), ("fb", _w(37)),
                   ("gw", _w(5, 37)), ("gb", _w(5))])
