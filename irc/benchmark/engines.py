"""One inference engine per process, driven by ``harness.Worker`` over a line protocol.

A worker is started as ``python -m irc.benchmark.engines ENGINE MODEL INPUT_DIR THREADS``
and answers one JSON line per command read from stdin:

* ``verify DIR``: run once, write every output as ``DIR/<index>.npy``;
* ``run N``: run N times, reply ``{"times_us": [...]}`` (one Python call each);
* ``quit``: reply ``{"peak_rss_mb": ...}`` (this process's VmHWM) and exit.

Only numpy, the engine and ``procs`` (standard library) are imported, so peak RSS compares
engines, not the harness.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from irc.benchmark.procs import vm_hwm_mb

Runner = Callable[[], list]


def load_inputs(directory: Path) -> tuple[list[str], list[np.ndarray]]:
    """Inputs saved by the parent: ``order.json`` gives names in model order."""
    names = json.loads((directory / "order.json").read_text())
    return names, [np.load(directory / f"{i}.npy") for i in range(len(names))]


def onnxruntime_runner(model: str, names: list[str], arrays: list[np.ndarray], threads: int) -> Runner:
    """onnxruntime with every graph optimization and ``threads`` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    feeds = dict(zip(names, arrays, strict=True))
    return lambda: sess.run(None, feeds)


def tract_runner(model: str, names: list[str], arrays: list[np.ndarray], threads: int) -> Runner:
    """tract from PyPI as shipped: load, bind the batch symbol, optimize into a runnable.

    tract-py exposes no thread setting; it runs on one thread whatever ``threads`` is.
    """
    import tract

    typed = tract.onnx().load(model).into_model()
    symbols = {}
    for i in range(typed.input_count()):
        dims = str(typed.input_fact(i)).split(",")[:-1]
        for dim, size in zip(dims, arrays[i].shape, strict=True):
            if not dim.strip().lstrip("-").isdigit():
                symbols[dim.strip()] = int(size)
    if symbols:
        typed.transform(tract.SetSymbols(symbols))
    runnable = typed.into_runnable()
    return lambda: [t.to_numpy() for t in runnable.run(list(arrays))]


def irc_python_runner(model: str, names: list[str], arrays: list[np.ndarray], threads: int) -> Runner:
    """The crate built by ``irc emit --python``, through its PyO3 binding.

    ``model`` is the directory of the emitted crate; its extension module (built with
    maturin from ``crate/python`` and installed into ``crate/pyinstall`` by irc_engine) is
    imported by the crate's name and called once per run, as
    ``Model.load(dir).forward(*inputs)``. RAYON_NUM_THREADS carries ``threads``.
    """
    import importlib

    crate = Path(model)
    sys.path.insert(0, str(crate / "pyinstall"))  # where irc_engine installed the built wheel
    module = importlib.import_module(crate.name)
    net = module.Model.load(str(crate))
    return lambda: _as_list(net.forward(*arrays))


def _as_list(result) -> list:
    return list(result) if isinstance(result, (tuple, list)) else [result]


RUNNERS = {"onnxruntime": onnxruntime_runner, "tract": tract_runner, "irc_python": irc_python_runner}


def serve(engine: str, model: str, input_dir: str, threads: int) -> int:
    # Replies go to the real stdout; anything the engine prints goes to stderr.
    reply_stream = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def reply(obj: dict) -> None:
        reply_stream.write(json.dumps(obj) + "\n")

    names, arrays = load_inputs(Path(input_dir))
    started = time.perf_counter()
    try:
        run = RUNNERS[engine](model, names, arrays, threads)
    except Exception as exc:  # any engine failure is reported, not raised
        reply({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"})
        return 1
    reply({"ready": True, "load_s": time.perf_counter() - started})
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        try:
            if command == "verify":
                for i, out in enumerate(run()):
                    np.save(Path(arg) / f"{i}.npy", np.asarray(out))
                reply({"ok": True})
            elif command == "run":
                times = []
                for _ in range(int(arg)):
                    t = time.perf_counter_ns()
                    run()
                    times.append((time.perf_counter_ns() - t) / 1000.0)
                reply({"times_us": times})
            elif command == "quit":
                reply({"peak_rss_mb": vm_hwm_mb()})
                return 0
            else:
                reply({"error": f"unknown command {command!r}"})
        except Exception as exc:
            reply({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"})
    return 0


if __name__ == "__main__":
    engine_name, model_path, inputs_path, thread_count = sys.argv[1:5]
    if thread_count and engine_name != "onnxruntime":
        os.environ["RAYON_NUM_THREADS"] = thread_count
    sys.exit(serve(engine_name, model_path, inputs_path, int(thread_count)))
