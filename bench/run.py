"""The fixed bench suite: irc vs onnxruntime vs tract on the same inputs.

``python bench/run.py [--quick] [--only m1,m2] [--batch 1,8] [--threads 1,2] [--budget S]``
builds the suite (``bench/models/build.py``), then runs each model through the harness of
``irc bench`` (``irc/benchmark/harness.py``: every engine in its own process, verified
against onnxruntime, warm-up discarded, interleaved rounds; median/p90 latency, throughput,
peak RSS), adds the runtime's GEMM micro-benchmark, and writes ``bench/results.json`` and
``bench/results.md``. The rules are in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from irc.benchmark import report  # noqa: E402
from irc.benchmark.harness import Bench, ModelCase, Settings, machine_info  # noqa: E402

SEED = 1234
QUICK_MODELS = ("tiny_classifier", "mlp", "mnist_cnn")


def manifest_feeds(entry: dict):
    """Seeded inputs for a manifest entry: token ids inside the vocabulary, floats ~ N(0, 1)."""
    def feeds(batch: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(SEED)
        out = {}
        for spec in entry["inputs"]:
            shape = (batch, *spec["shape"])
            if spec.get("vocab"):
                out[spec["name"]] = rng.integers(0, spec["vocab"], size=shape).astype(spec["dtype"])
            else:
                out[spec["name"]] = rng.standard_normal(shape).astype(spec["dtype"])
        return out

    return feeds


def run_suite(args: argparse.Namespace, manifest: dict, models_dir: Path) -> dict:
    settings = Settings(work=args.work, batches=args.batch, threads=args.threads,
                        against=[e for e in args.engines if e != "irc"], irc="irc" in args.engines,
                        budget=args.budget, rounds=args.rounds, warmup=args.warmup, max_runs=args.max_runs,
                        settle=args.settle)
    bench = Bench(settings, step=lambda message: print(f"== {message}", flush=True))
    rows, builds = [], {}
    for name in args.only:
        case = ModelCase(name, models_dir / f"{name}.onnx", manifest_feeds(manifest["models"][name]))
        model_rows, build = bench.run_model(case)
        rows += model_rows
        if build is not None:
            builds[name] = build
    irc = {"available": bench.irc_ok, "note": bench.irc_reason if "irc" in args.engines else "disabled with --engines",
           "builds": builds}
    return {"rows": rows, "irc": irc, "settings": settings.as_dict()}


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
    # One thread: the bar is a share of one core's peak (the runtime splits GEMMs above 8 MFLOP).
    env = dict(os.environ, RAYON_NUM_THREADS="1")
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
    p.add_argument("--settle", type=float, default=0.1, help="idle seconds after each engine's round")
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
    results = run_suite(args, manifest, models_dir)
    results["gemm"] = None if args.no_gemm else gemm_bench(args.quick)
    results.update(machine=machine_info(), source=source_state(), mode="quick" if args.quick else "full",
                   seconds=round(time.perf_counter() - started, 1))
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    md = args.out.with_suffix(".md")
    md.write_text(report.markdown(results))
    print(f"wrote {args.out} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
