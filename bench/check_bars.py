"""Check the performance bars of issue 6 against ``bench/results.json``.

``python bench/check_bars.py [RESULTS]`` prints one line per bar: PASS, FAIL, or PENDING
(not measured in this run: model not in the run, or no irc figure). Exit status 1 if any
bar fails, 0 otherwise. The irc figure is the Python binding's when the run has it, else
the native loop's, and each line says which.

``--timing-advisory`` (CI): latency and memory bars are printed but only a correctness bar
(every engine's outputs verified against onnxruntime) sets the exit status, because a
shared CI machine's timings are too noisy to gate on; `make bench` gates on all of them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

CNNS = ("resnet18", "mobilenet", "mnist_cnn")
GEMM_BAR_PCT = 80.0


def latency_bars(rows: list[dict]) -> Iterator[tuple[str, dict | None, str, float]]:
    """(label, row or None, ratio key, limit) for every latency/RSS bar."""
    def find(model, batch, threads):
        return next((r for r in rows if (r["model"], r["batch"], r["threads"]) == (model, batch, threads)), None)

    yield "tiny_classifier b1: irc <= 1/3 of onnxruntime", find("tiny_classifier", 1, 1), "irc/onnxruntime", 1 / 3
    yield "mlp b1: irc <= 0.8x onnxruntime", find("mlp", 1, 1), "irc/onnxruntime", 0.8
    for model in CNNS:
        for batch in (1, 8):
            yield f"{model} b{batch} t1: irc <= 1.0x onnxruntime", find(model, batch, 1), "irc/onnxruntime", 1.0
            yield f"{model} b{batch} t2: irc <= 1.1x onnxruntime", find(model, batch, 2), "irc/onnxruntime", 1.1
    yield "bert_encoder b1 t1: irc <= 1.2x onnxruntime", find("bert_encoder", 1, 1), "irc/onnxruntime", 1.2
    for row in rows:
        where = f"{row['model']} b{row['batch']} t{row['threads']}"
        yield f"{where}: irc <= 0.5x tract", row, "irc/tract", 0.5
        yield f"{where}: irc peak RSS <= onnxruntime's", row, "rss irc/onnxruntime", 1.0


def correctness(rows: list[dict]) -> list[tuple[str, str]]:
    """One (status, message) per configuration: did every engine match onnxruntime?"""
    lines = []
    for row in rows:
        where = f"{row['model']} b{row['batch']} t{row['threads']}"
        failed = [name for name, entry in row["engines"].items() if entry.get("verified") is not True]
        status = "FAIL" if failed else "PASS"
        detail = f"not verified: {', '.join(failed)}" if failed else f"{len(row['engines'])} engines"
        lines.append((status, f"{where}: outputs match onnxruntime ({detail})"))
    return lines


def check(results: dict) -> list[tuple[str, str]]:
    """(status, message) per bar."""
    lines = []
    for label, row, key, limit in latency_bars(results["rows"]):
        ratio = row["ratios"].get(key) if row else None
        if ratio is None:
            lines.append(("PENDING", f"{label} (not measured in this run)"))
            continue
        via = row["ratios"].get("irc_measured_via") or "?"
        status = "PASS" if ratio <= limit else "FAIL"
        lines.append((status, f"{label}: {ratio:.2f} (limit {limit:.2f}, irc via {via})"))
    gemm = results.get("gemm")
    if gemm:
        best = max(gemm["sgemm"], key=lambda g: g["irc_pct_of_peak"])
        pct = best["irc_pct_of_peak"]
        status = "PASS" if pct >= GEMM_BAR_PCT else "FAIL"
        lines.append((status, f"GEMM reaches {pct:.0f}% of the measured single-core peak "
                              f"({gemm['peak']['gflops']:.1f} GFLOP/s) at {best['m']}x{best['n']}x{best['k']} "
                              f"(bar {GEMM_BAR_PCT:.0f}%)"))
    else:
        lines.append(("PENDING", "GEMM micro-benchmark not in this run"))
    return lines


def main(argv: list[str]) -> int:
    advisory = "--timing-advisory" in argv
    paths = [a for a in argv if not a.startswith("--")]
    path = Path(paths[0]) if paths else Path(__file__).resolve().parent / "results.json"
    if not path.exists():
        print(f"error: {path} does not exist; run `make bench` or `make bench-quick` first", file=sys.stderr)
        return 2
    results = json.loads(path.read_text())
    verified = correctness(results["rows"])
    lines = verified + check(results)
    for status, message in lines:
        print(f"{status:8} {message}")
    counts = {s: sum(1 for st, _ in lines if st == s) for s in ("PASS", "FAIL", "PENDING")}
    print(f"bars: {counts['PASS']} pass, {counts['FAIL']} fail, {counts['PENDING']} pending"
          + (" (timing bars advisory)" if advisory else ""))
    gating = verified if advisory else lines
    return 1 if any(status == "FAIL" for status, _ in gating) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
