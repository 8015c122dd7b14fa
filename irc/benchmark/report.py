"""Ratios and the Markdown table of ``bench/results.json``."""

from __future__ import annotations


def irc_entry(engines: dict) -> tuple[str | None, dict | None]:
    """The irc figure to compare: the Python binding (one call, like the others), else the native loop."""
    for name in ("irc_python", "irc_native"):
        entry = engines.get(name)
        if entry and entry.get("median_us"):
            return name, entry
    return None, None


def _ratio(a: dict | None, b: dict | None, key: str = "median_us") -> float | None:
    if not a or not b or not a.get(key) or not b.get(key):
        return None
    return round(a[key] / b[key], 3)


def ratios(engines: dict) -> dict:
    """Latency and peak-RSS ratios; < 1 means the first engine is faster / lighter."""
    ort, tract = engines.get("onnxruntime"), engines.get("tract")
    name, irc = irc_entry(engines)
    return {
        "irc_measured_via": name,
        "irc/onnxruntime": _ratio(irc, ort),
        "irc/tract": _ratio(irc, tract),
        "irc_native/onnxruntime": _ratio(engines.get("irc_native"), ort),
        "tract/onnxruntime": _ratio(tract, ort),
        "rss irc/onnxruntime": _ratio(irc, ort, "peak_rss_mb"),
    }


def _cell(entry: dict | None) -> str:
    if not entry:
        return "-"
    if entry.get("median_us") is None:
        return "error" if entry.get("error") else "-"
    digits = 1 if entry["median_us"] < 100 else 0  # a few-µs model needs its tenths
    return f"{entry['median_us']:,.{digits}f} / {entry['p90_us']:,.{digits}f}"


def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# Bench results",
        "",
        f"{m['cpu']}, {m['cores']} cores; onnxruntime {m['onnxruntime']}, tract {m['tract']}; "
        f"{m['date_utc']}; mode {results['mode']}. Latency in µs (median / p90) per call; "
        "ratios < 1 mean irc is faster. Rules: bench/README.md.",
        "",
        f"irc: {'available' if results['irc']['available'] else 'not available'} ({results['irc']['note']}); "
        f"source: commit {results.get('source', {}).get('commit', '?')}"
        + (f", uncommitted irc files used: {', '.join(results['source']['uncommitted_irc_files'])}"
           if results.get("source", {}).get("uncommitted_irc_files") else ""),
        "",
        "| model | batch | threads | onnxruntime | tract | irc (binding) | irc (native) | irc/ort | irc/tract "
        "| tract/ort | RSS MiB ort / tract / irc |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        e, r = row["engines"], row["ratios"]
        rss = " / ".join(_num((e.get(k) or {}).get("peak_rss_mb"), "{:.0f}") for k in
                         ("onnxruntime", "tract", r["irc_measured_via"] or "irc_native"))
        lines.append(
            f"| {row['model']} | {row['batch']} | {row['threads']} | {_cell(e.get('onnxruntime'))} | "
            f"{_cell(e.get('tract'))} | {_cell(e.get('irc_python'))} | {_cell(e.get('irc_native'))} | "
            f"{_num(r['irc/onnxruntime'])} | {_num(r['irc/tract'])} | {_num(r['tract/onnxruntime'])} | {rss} |")
    errors = [(row, k, v["error"]) for row in results["rows"] for k, v in row["engines"].items() if v.get("error")]
    if errors:
        lines += ["", "Errors:", ""]
        lines += [f"- {row['model']} b{row['batch']} t{row['threads']} {k}: {msg}" for row, k, msg in errors]
    builds = results["irc"].get("builds") or {}
    if builds:
        lines += ["", "| model | cargo build --release (s) | binary bytes | source bytes |", "|---|---|---|---|"]
        for name, b in builds.items():
            lines.append(f"| {name} | {b.get('build_seconds', '-')} | {b.get('binary_bytes', '-')} | "
                         f"{b.get('source_bytes', b.get('error', '-'))} |")
    gemm = results.get("gemm")
    if gemm:
        lines += ["", f"## GEMM micro-benchmark (single core, measured peak {gemm['peak']['gflops']:.1f} GFLOP/s: "
                  f"{gemm['peak']['how']})", "",
                  "GFLOP/s of the best call (median call in results.json).", "",
                  "| m x n x k | irc sgemm | % of peak | irc, B prepacked | ndarray (matrixmultiply) |",
                  "|---|---|---|---|---|"]
        auto = f"irc_{gemm['detected_isa']}"
        for g in gemm["sgemm"]:
            best = g["gflops_best"]
            prepacked = _num(best.get("irc_prepacked_b"), "{:.1f}")
            lines.append(f"| {g['m']}x{g['n']}x{g['k']} | {best[auto]:.1f} | {g['irc_pct_of_peak']:.0f}% | "
                         f"{prepacked} | {best['ndarray_matrixmultiply']:.1f} |")
    return "\n".join(lines) + "\n"
