"""Side-by-side inference bench: irc vs onnxruntime vs tract on the same inputs.

``python bench/run.py [--quick] [--only m1,m2] [--batch 1,8] [--threads 1,2] [--budget S]``
builds the suite (``bench/models/build.py``), then for each model, batch and thread count:
starts every engine in its own process, verifies its outputs against onnxruntime's,
discards warm-up runs, times the engines in interleaved rounds, and records median/p90
latency, throughput and each process's peak RSS. Writes ``bench/results.json`` and
``bench/results.md``. The rules are in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

import irc_engine  # noqa: E402
import report  # noqa: E402

SEED = 1234
TOLERANCE = (1e-3, 1e-3)  # (atol, rtol) for verification: engines reorder float sums
QUICK_MODELS = ("tiny_classifier", "mlp", "mnist_cnn")


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
        out.update(median_us=round(median, 1), p90_us=round(p90, 1),
                   throughput_per_s=round(batch * 1e6 / median, 1), samples=samples)
        return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


class Worker:
    """An engine in its own Python process (``engines.py``), driven line by line."""

    def __init__(self, engine: str, model: str, input_dir: Path, threads: int):
        self.engine = engine
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "engines.py"), engine, model, str(input_dir), str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
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


def make_inputs(entry: dict, batch: int, directory: Path) -> list[str]:
    """Seeded inputs for a manifest entry (token ids inside the vocabulary), saved as .npy."""
    rng = np.random.default_rng(SEED)
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for i, spec in enumerate(entry["inputs"]):
        shape = (batch, *spec["shape"])
        if spec.get("vocab"):
            array = rng.integers(0, spec["vocab"], size=shape).astype(spec["dtype"])
        else:
            array = rng.standard_normal(shape).astype(spec["dtype"])
        np.save(directory / f"{i}.npy", array)
        names.append(spec["name"])
    (directory / "order.json").write_text(json.dumps(names))
    return names


def compare(reference: list[np.ndarray], actual: list[np.ndarray]) -> tuple[bool, float, float]:
    from irc.oracle import Tolerance, compare_arrays

    if len(reference) != len(actual):
        return False, float("inf"), float("inf")
    diffs = [compare_arrays(str(i), ref, np.asarray(act), Tolerance(*TOLERANCE))
             for i, (ref, act) in enumerate(zip(reference, actual, strict=True))]
    return all(d.ok for d in diffs), max(d.max_abs for d in diffs), max(d.max_rel for d in diffs)


def load_outputs(directory: Path) -> list[np.ndarray]:
    return [np.load(p) for p in sorted(directory.glob("*.npy"), key=lambda p: int(p.stem))]


class Bench:
    def __init__(self, args: argparse.Namespace, manifest: dict, models_dir: Path):
        self.args = args
        self.manifest = manifest
        self.models_dir = models_dir
        self.work = args.work
        self.irc_ok, self.irc_reason = (False, "disabled with --engines")
        if "irc" in args.engines:
            self.irc_ok, self.irc_reason = irc_engine.available()
        self.irc_builds: dict[str, dict] = {}

    def run(self) -> dict:
        rows = []
        for name in self.args.only:
            entry = self.manifest["models"][name]
            build = self.build_irc(name)
            for batch in self.args.batch:
                input_dir = self.work / "inputs" / f"{name}_b{batch}"
                names = make_inputs(entry, batch, input_dir)
                for threads in self.args.threads:
                    config = Config(name, batch, threads)
                    print(f"== {name} batch={batch} threads={threads}", flush=True)
                    rows.append(self.run_config(config, names, input_dir, build))
        return {"rows": rows, "irc": {"available": self.irc_ok, "note": self.irc_reason,
                                      "builds": self.irc_builds}}

    def build_irc(self, name: str):
        if not self.irc_ok:
            return None
        try:
            build = irc_engine.prepare(self.models_dir / f"{name}.onnx", self.work, name)
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            self.irc_builds[name] = {"error": str(exc)}
            return None
        self.irc_builds[name] = {"build_seconds": round(build.build_seconds, 1), "binary_bytes": build.binary_bytes,
                                 "source_bytes": build.source_bytes, "python_binding": bool(build.python_module),
                                 "notes": build.notes}
        return build

    def run_config(self, config: Config, names: list[str], input_dir: Path, build) -> dict:
        model_path = str(self.models_dir / f"{config.model}.onnx")
        engines = ["onnxruntime"] + [e for e in self.args.engines if e == "tract"]
        sources = {e: model_path for e in engines}
        if build is not None and build.python_module is not None:
            engines.append("irc_python")
            sources["irc_python"] = str(build.crate)
        results = {e: EngineResult(via="python call") for e in engines}
        workers = self.start_workers(engines, sources, input_dir, config, results)
        reference = self.verify(workers, results, config)
        native = None
        if build is not None and reference is not None:
            native = self.verify_native(build, names, input_dir, config, reference)
            results["irc_native"] = native
        self.time_rounds(workers, results, native, build, names, input_dir, config)
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

    def verify_native(self, build, names, input_dir, config, reference) -> EngineResult:
        result = EngineResult(via="native --bench loop")
        out_dir = self.work / "outputs" / f"{config.model}_b{config.batch}" / "irc_native"
        try:
            output_names = [o for o in self.output_names(config.model)]
            got = irc_engine.verify(build, names, input_dir, out_dir, output_names)
        except (RuntimeError, OSError, KeyError, subprocess.SubprocessError) as exc:
            result.error = str(exc)
            return result
        result.verified, result.max_abs_err, result.max_rel_err = compare(reference, got)
        if not result.verified:
            result.error = "outputs differ from onnxruntime"
        return result

    def output_names(self, model: str) -> list[str]:
        import onnx

        proto = onnx.load(str(self.models_dir / f"{model}.onnx"), load_external_data=False)
        return [o.name for o in proto.graph.output]

    def time_rounds(self, workers, results, native, build, names, input_dir, config: Config) -> None:
        """Warm-up discarded, then rounds in rotating engine order so noise hits all alike."""
        live = [e for e, w in workers.items() if results[e].verified]
        per_call = {}
        for engine in live:
            workers[engine].ask(f"run {self.args.warmup}")
            probe = workers[engine].ask("run 3").get("times_us", [1e6])
            per_call[engine] = max(float(np.median(probe)), 1.0)
        rounds = self.args.rounds
        slot = self.args.budget / rounds  # seconds per engine per round
        for r in range(rounds):
            order = live[r % len(live):] + live[:r % len(live)] if live else []
            for engine in order:
                count = int(min(self.args.max_runs / rounds, max(1, slot * 1e6 / per_call[engine])))
                reply = workers[engine].ask(f"run {count}")
                results[engine].times_us += reply.get("times_us", [])
            if native is not None and native.verified:
                self.native_round(build, names, input_dir, config, native, slot)

    def native_round(self, build, names, input_dir, config, native: EngineResult, slot: float) -> None:
        if native.round_stats:
            estimate = native.round_stats[-1][0]
            count = int(min(self.args.max_runs / self.args.rounds, max(3, slot * 1e6 / max(estimate, 1.0))))
        else:
            count = 3  # no estimate yet: the first round sizes the next ones
        try:
            median, p90, rss = irc_engine.bench_native(build, names, input_dir, count, config.threads)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            native.error = str(exc)
            native.verified = False
            return
        native.round_stats.append((median, p90))
        if rss is not None:
            native.rss_mb = max(native.rss_mb or 0.0, rss)


def machine_info() -> dict:
    import onnxruntime
    import tract

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": __import__("os").cpu_count(), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "tract": tract.version(),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def source_state() -> dict:
    """The commit the bench ran on, and irc files changed but not committed (they were used)."""
    def git(*args: str) -> str:
        ran = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return ran.stdout.rstrip() if ran.returncode == 0 else ""  # porcelain lines start with a space

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "irc").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted_irc_files": dirty}


def gemm_bench(quick: bool) -> dict | None:
    """The runtime GEMM micro-benchmark (bench/gemm), as JSON."""
    crate = BENCH / "gemm"
    env = dict(__import__("os").environ)
    env.setdefault("CARGO_TARGET_DIR", str(REPO / ".cargo-target"))
    cmd = ["cargo", "run", "--release", "--quiet", "--bin", "gemm-bench", "--"] + (["--quick"] if quick else [])
    ran = subprocess.run(cmd, cwd=crate, env=env, capture_output=True, text=True, timeout=1800)
    if ran.returncode != 0:
        print(f"warning: gemm bench failed: {ran.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(ran.stdout)


def refresh_gemm(args: argparse.Namespace) -> int:
    """Rerun only the GEMM micro-benchmark into an existing results file."""
    if not args.out.exists():
        print(f"error: {args.out} does not exist; run the bench first", file=sys.stderr)
        return 2
    results = json.loads(args.out.read_text())
    gemm = gemm_bench(args.quick)
    if gemm is None:
        return 1
    results["gemm"] = gemm
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(report.markdown(results))
    print(f"updated the gemm section of {args.out}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CI mode: 3 small models, batch 1, 1 thread, short budget")
    p.add_argument("--only", default="", help="comma-separated model names (default: the whole suite)")
    p.add_argument("--batch", type=ints, default=None, help="batch sizes (default 1,8; quick: 1)")
    p.add_argument("--threads", type=ints, default=None, help="thread counts (default 1,2; quick: 1)")
    p.add_argument("--engines", default="onnxruntime,tract,irc", help="engines besides onnxruntime")
    p.add_argument("--budget", type=float, default=None, help="seconds of timed runs per engine and config")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per config")
    p.add_argument("--warmup", type=int, default=5, help="discarded runs per engine before timing")
    p.add_argument("--max-runs", type=int, default=2000, help="cap on timed runs per engine and config")
    p.add_argument("--no-gemm", action="store_true", help="skip the GEMM micro-benchmark")
    p.add_argument("--gemm-only", action="store_true",
                   help="only rerun the GEMM micro-benchmark and replace its section of --out")
    p.add_argument("--work", type=Path, default=BENCH / "work", help="scratch directory (models, crates, inputs)")
    p.add_argument("--out", type=Path, default=BENCH / "results.json")
    args = p.parse_args(argv)
    args.engines = [e for e in args.engines.split(",") if e]
    args.batch = args.batch or ([1] if args.quick else [1, 8])
    args.threads = args.threads or ([1] if args.quick else [1, 2])
    args.budget = args.budget or (1.0 if args.quick else 4.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.gemm_only:
        return refresh_gemm(args)
    sys.path.insert(0, str(BENCH / "models"))
    from zoo import SUITE

    suite = [s.name for s in SUITE]
    args.only = [n for n in args.only.split(",") if n] or (list(QUICK_MODELS) if args.quick else suite)
    if unknown := sorted(set(args.only) - set(suite)):
        print(f"error: unknown model(s) {', '.join(unknown)}; the suite is {', '.join(suite)}", file=sys.stderr)
        return 2
    models_dir = args.work / "models"
    built = subprocess.run([sys.executable, str(BENCH / "models" / "build.py"), "--out", str(models_dir),
                            "--only", ",".join(args.only)], text=True)
    if built.returncode != 0:
        print("error: building the bench models failed", file=sys.stderr)
        return 2
    manifest = json.loads((models_dir / "manifest.json").read_text())
    started = time.perf_counter()
    results = Bench(args, manifest, models_dir).run()
    results["gemm"] = None if args.no_gemm else gemm_bench(args.quick)
    results.update(machine=machine_info(), source=source_state(), mode="quick" if args.quick else "full",
                   seconds=round(time.perf_counter() - started, 1),
                   settings={"batch": args.batch, "threads": args.threads, "budget_s": args.budget,
                             "rounds": args.rounds, "warmup": args.warmup, "tolerance_atol_rtol": TOLERANCE})
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    md = args.out.with_suffix(".md")
    md.write_text(report.markdown(results))
    print(f"wrote {args.out} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
