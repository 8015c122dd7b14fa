"""Side-by-side inference timing: irc vs onnxruntime vs tract on the same inputs.

For each batch size and thread count: every engine starts in its own process, its outputs
are compared with onnxruntime's (an engine that differs gets no time), warm-up runs are
discarded, then the engines run in interleaved rounds whose order rotates, and each gets
median/p90 latency, throughput and its process's peak RSS. The rules are in
``bench/README.md``; ``irc bench`` and ``bench/run.py`` both drive this module.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import irc_engine, report

TOLERANCE = (1e-3, 1e-3)  # (atol, rtol) for verification: engines reorder float sums
ENGINES = ("onnxruntime", "tract")
"""Engines irc is timed against; onnxruntime also verifies every run, timed or not."""

Feeds = Callable[[int], dict[str, np.ndarray]]
Step = Callable[[str], None]


@dataclass
class Settings:
    work: Path
    batches: list[int]
    threads: list[int]
    against: list[str] = field(default_factory=lambda: list(ENGINES))
    irc: bool = True
    python: bool = True
    budget: float = 2.0
    """Seconds of timed runs per engine and configuration (unless ``runs`` is set)."""
    runs: int | None = None
    """A fixed number of timed runs per engine and configuration instead of ``budget``."""
    rounds: int = 5
    warmup: int = 5
    max_runs: int = 2000
    settle: float = 0.1
    """Idle seconds after each engine's round: thread pools that spin after their last call
    (onnxruntime's does, for tens of ms) would otherwise take a core from the next engine."""

    def as_dict(self) -> dict:
        return {"batch": self.batches, "threads": self.threads, "against": self.against,
                "budget_s": None if self.runs else self.budget, "runs": self.runs, "rounds": self.rounds,
                "warmup": self.warmup, "settle_s": self.settle, "tolerance_atol_rtol": TOLERANCE}


@dataclass
class ModelCase:
    """A model to bench: its ONNX file and the inputs of each batch size (by name, model order)."""

    name: str
    path: Path
    feeds: Feeds


@dataclass
class Config:
    model: str
    batch: int
    threads: int


@dataclass
class EngineResult:
    times_us: list[float] = field(default_factory=list)
    rss_mb: float | None = None
    verified: bool | None = None
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    error: str | None = None
    via: str = ""
    # The native CLI reports one (median, p90) per process instead of single timings.
    round_stats: list[tuple[float, float]] = field(default_factory=list)

    def summary(self, batch: int) -> dict:
        out = {"via": self.via, "verified": self.verified, "max_abs_err": self.max_abs_err,
               "max_rel_err": self.max_rel_err, "peak_rss_mb": _round(self.rss_mb), "error": self.error}
        if not self.verified:
            return out
        if self.times_us:
            median, p90 = float(np.median(self.times_us)), float(np.percentile(self.times_us, 90))
            samples = len(self.times_us)
        elif self.round_stats:  # median over rounds of each process's median and p90
            median, p90 = (float(np.median(col)) for col in zip(*self.round_stats, strict=True))
            samples = len(self.round_stats)
        else:
            return out
        # Throughput from the reported (rounded) median, so the two figures agree exactly.
        median, p90 = round(median, 2), round(p90, 2)
        out.update(median_us=median, p90_us=p90,
                   throughput_per_s=round(batch * 1e6 / median, 1) if median > 0 else None, samples=samples)
        return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


class Worker:
    """An engine in its own Python process (``engines.py``), driven line by line."""

    def __init__(self, engine: str, model: str, input_dir: Path, threads: int):
        self.engine = engine
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "irc.benchmark.engines", engine, model, str(input_dir), str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
            env=irc_engine.python_env(),
        )
        self.ready = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        return json.loads(line) if line else {"error": "worker exited"}

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> float | None:
        """Stop the worker; its peak RSS in MiB as it reported it."""
        try:
            reply = self.ask("quit")
            self.proc.stdin.close()
        except (BrokenPipeError, json.JSONDecodeError):
            reply = {}
        self.proc.wait(timeout=60)
        return reply.get("peak_rss_mb")


def save_inputs(feeds: dict[str, np.ndarray], directory: Path) -> list[str]:
    """Write the inputs the way every engine reads them: ``i.npy`` plus ``order.json`` (names)."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, array in enumerate(feeds.values()):
        np.save(directory / f"{i}.npy", array)
    (directory / "order.json").write_text(json.dumps(list(feeds)))
    return list(feeds)


def compare(reference: list[np.ndarray], actual: list[np.ndarray]) -> tuple[bool, float, float]:
    from ..oracle import Tolerance, compare_arrays

    if len(reference) != len(actual):
        return False, float("inf"), float("inf")
    diffs = [compare_arrays(str(i), ref, np.asarray(act), Tolerance(*TOLERANCE))
             for i, (ref, act) in enumerate(zip(reference, actual, strict=True))]
    return all(d.ok for d in diffs), max(d.max_abs for d in diffs), max(d.max_rel for d in diffs)


def load_outputs(directory: Path) -> list[np.ndarray]:
    return [np.load(p) for p in sorted(directory.glob("*.npy"), key=lambda p: int(p.stem))]


def output_names(model: Path) -> list[str]:
    import onnx

    proto = onnx.load(str(model), load_external_data=False)
    return [o.name for o in proto.graph.output]


class Bench:
    """Runs models through every configuration of ``settings``; ``step`` hears of long steps."""

    def __init__(self, settings: Settings, step: Step = lambda message: None):
        self.settings = settings
        self.work = settings.work
        self.step = step
        self.irc_ok, self.irc_reason = (False, "disabled")
        if settings.irc:
            self.irc_ok, self.irc_reason = irc_engine.available()

    def run_model(self, case: ModelCase) -> tuple[list[dict], dict | None]:
        """Result rows (one per batch x threads) and the irc build's entry (None without irc)."""
        build, entry = self.build_irc(case)
        rows = []
        for batch in self.settings.batches:
            input_dir = self.work / "inputs" / f"{case.name}_b{batch}"
            names = save_inputs(case.feeds(batch), input_dir)
            for threads in self.settings.threads:
                self.step(f"{case.name}: timing batch {batch}, {threads} thread(s)")
                rows.append(self.run_config(case, Config(case.name, batch, threads), names, input_dir, build))
        return rows, entry

    def build_irc(self, case: ModelCase) -> tuple[irc_engine.IrcBuild | None, dict | None]:
        if not self.irc_ok:
            return None, None
        self.step(f"{case.name}: emitting and building the crate (cargo build --release)")
        try:
            build = irc_engine.prepare(case.path, self.work, case.name, python=self.settings.python)
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            return None, {"error": str(exc)}
        return build, build.as_dict()

    def run_config(self, case: ModelCase, config: Config, names: list[str], input_dir: Path, build) -> dict:
        engines = ["onnxruntime"] + [e for e in self.settings.against if e != "onnxruntime"]
        sources = {e: str(case.path) for e in engines}
        if build is not None and build.python_module is not None:
            engines.append("irc_python")
            sources["irc_python"] = str(build.crate)
        results = {e: EngineResult(via="python call") for e in engines}
        workers = self.start_workers(engines, sources, input_dir, config, results)
        reference = self.verify(workers, results, config)
        native = None
        if build is not None and reference is not None:
            native = self.verify_native(case, build, names, input_dir, config, reference)
            results["irc_native"] = native
        timed = {e: w for e, w in workers.items() if e in self.settings.against or e == "irc_python"}
        self.time_rounds(timed, results, native, build, names, input_dir, config)
        for engine, worker in workers.items():
            results[engine].rss_mb = worker.close()
        summary = {e: r.summary(config.batch) for e, r in results.items()}
        return {"model": config.model, "batch": config.batch, "threads": config.threads, "engines": summary,
                "ratios": report.ratios(summary)}

    def start_workers(self, engines, sources, input_dir, config, results) -> dict[str, Worker]:
        workers = {}
        for engine in engines:
            worker = Worker(engine, sources[engine], input_dir, config.threads)
            if "error" in worker.ready:
                results[engine].error = worker.ready["error"]
                worker.close()
            else:
                workers[engine] = worker
        return workers

    def verify(self, workers: dict[str, Worker], results, config: Config):
        """Every engine's outputs against onnxruntime's on the same inputs."""
        outputs = {}
        for engine, worker in workers.items():
            out_dir = self.work / "outputs" / f"{config.model}_b{config.batch}" / engine
            out_dir.mkdir(parents=True, exist_ok=True)
            reply = worker.ask(f"verify {out_dir}")
            if "error" in reply:
                results[engine].error = reply["error"]
                continue
            outputs[engine] = load_outputs(out_dir)
        reference = outputs.get("onnxruntime")
        if reference is None:
            return None
        for engine, out in outputs.items():
            ok, abs_err, rel_err = compare(reference, out)
            results[engine].verified, results[engine].max_abs_err, results[engine].max_rel_err = ok, abs_err, rel_err
            if not ok:
                results[engine].error = f"outputs differ from onnxruntime (max abs {abs_err:.3g})"
        return reference

    def verify_native(self, case, build, names, input_dir, config, reference) -> EngineResult:
        result = EngineResult(via="native --bench loop")
        out_dir = self.work / "outputs" / f"{config.model}_b{config.batch}" / "irc_native"
        try:
            got = irc_engine.verify(build, names, input_dir, out_dir, output_names(case.path))
        except (RuntimeError, OSError, KeyError, subprocess.SubprocessError) as exc:
            result.error = str(exc)
            return result
        result.verified, result.max_abs_err, result.max_rel_err = compare(reference, got)
        if not result.verified:
            result.error = "outputs differ from onnxruntime"
        return result

    def round_counts(self, per_call_us: float | None) -> list[int]:
        """Timed runs of one engine in each round: ``runs`` spread evenly, else what fits the budget."""
        s = self.settings
        if s.runs:
            rounds = min(s.rounds, s.runs)
            return [s.runs // rounds + (r < s.runs % rounds) for r in range(rounds)]
        if per_call_us is None:
            return [3] * s.rounds  # no estimate yet
        slot_us = s.budget / s.rounds * 1e6
        return [int(min(s.max_runs / s.rounds, max(1, slot_us / max(per_call_us, 1.0))))] * s.rounds

    def time_rounds(self, workers, results, native, build, names, input_dir, config: Config) -> None:
        """Warm-up discarded, then rounds in rotating engine order so noise hits all alike."""
        live = [e for e, w in workers.items() if results[e].verified]
        counts = {}
        for engine in live:
            workers[engine].ask(f"run {self.settings.warmup}")
            probe = workers[engine].ask("run 3").get("times_us", [1e6])
            counts[engine] = self.round_counts(float(np.median(probe)))
        rounds = len(self.round_counts(1.0))
        for r in range(rounds):
            order = live[r % len(live):] + live[:r % len(live)] if live else []
            for engine in order:
                reply = workers[engine].ask(f"run {counts[engine][r]}")
                results[engine].times_us += reply.get("times_us", [])
                time.sleep(self.settings.settle)
            if native is not None and native.verified:
                self.native_round(build, names, input_dir, config, native, r)
                time.sleep(self.settings.settle)
        if native is not None and native.verified and native.round_stats:
            self.native_memory(build, names, input_dir, config, native)

    def native_round(self, build, names, input_dir, config, native: EngineResult, r: int) -> None:
        estimate = native.round_stats[-1][0] if native.round_stats else None
        counts = self.round_counts(estimate)
        count = counts[r] if self.settings.runs else max(3, counts[r])  # a median of at least 3 runs
        try:
            # Timed without the RSS poller (a thread of this process waking every 2 ms would
            # take time from the loop it measures); `native_memory` measures the peak after.
            median, p90, _ = irc_engine.bench_native(build, names, input_dir, count, config.threads,
                                                     measure_rss=False)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            native.error = str(exc)
            native.verified = False
            return
        native.round_stats.append((median, p90))

    def native_memory(self, build, names, input_dir, config, native: EngineResult) -> None:
        """Peak RSS of the native loop, from one untimed ``--bench`` process polled every 2 ms.

        The timed processes run without the poller (it costs ~5% of a core, taken from a
        2-thread loop on this 2-core machine). This one runs ~0.2 s and at least 3 calls, so a
        poll sees it (the peak is reached in the first call; later calls reuse its buffers).
        """
        median_us = float(np.median([m for m, _ in native.round_stats]))
        runs = int(min(100_000, max(3, 0.2e6 / max(median_us, 0.1))))
        try:
            native.rss_mb = irc_engine.bench_native(build, names, input_dir, runs, config.threads)[2]
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            native.error = f"peak RSS run: {exc}"


def all_verified(rows: list[dict]) -> bool:
    """Whether every engine of every row ran and matched onnxruntime."""
    return bool(rows) and all(entry.get("verified") is True for row in rows for entry in row["engines"].values())


def machine_info() -> dict:
    """CPU, cores, and the versions of the engines."""
    import os

    import onnxruntime

    try:
        import tract

        tract_version = tract.version()
    except ImportError:
        tract_version = None
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "tract": tract_version,
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
