"""`irc bench MODEL`: check the arguments, run the harness on one model, show the result."""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import IrcError
from . import harness, irc_engine

SEED = 0
DEFAULT_BATCHES = [1, 8]
WORK_MARKER = ".irc-bench"
"""Written into a --work directory, so that a rerun may replace its contents and nothing else is."""
ENGINE_LABELS = {"irc_python": "irc python", "irc_native": "irc native", "onnxruntime": "onnxruntime",
                 "tract": "tract"}


@dataclass
class BenchRequest:
    """The command line of ``irc bench``, unparsed."""

    model: Path
    batch: str | None = None
    threads: str = "1"
    against: str | None = None
    runs: int | None = None
    budget: float = 2.0
    work: Path | None = None
    python: bool = True


def parse_counts(option: str, text: str) -> list[int]:
    """``1,8,32`` -> [1, 8, 32]: positive integers, each once."""
    parts = [p.strip() for p in text.split(",")]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise IrcError(f"{option}: expected positive integers separated by commas, got {text!r}")
    return list(dict.fromkeys(int(p) for p in parts))


def parse_against(text: str | None) -> list[str]:
    """Engines to time irc against; default onnxruntime, plus tract when it is installed."""
    tract_installed = importlib.util.find_spec("tract") is not None
    if text is None:
        return ["onnxruntime", "tract"] if tract_installed else ["onnxruntime"]
    engines = list(dict.fromkeys(e.strip() for e in text.split(",") if e.strip()))
    if unknown := [e for e in engines if e not in harness.ENGINES]:
        raise IrcError(f"--against: unknown engine {unknown[0]!r} (available: {', '.join(harness.ENGINES)})")
    if "tract" in engines and not tract_installed:
        raise IrcError("--against tract: the tract package is not installed (pip install tract)")
    return engines


def check_model(path: Path) -> None:
    if not path.exists():
        raise IrcError(f"{path}: no such file")
    if path.is_dir() or path.suffix.lower() != ".onnx":
        raise IrcError(f"{path}: irc bench takes an .onnx model; convert it first: irc import {path} -o model.onnx")


def fixed_batch(graph) -> int | None:
    """The batch a model without a symbolic batch axis accepts (its inputs' first axis), else None."""
    inputs = [v for v in graph.inputs if v.name not in graph.initializers]
    firsts = [v.shape[0] if v.shape else None for v in inputs]
    if not firsts or not all(isinstance(d, int) and d > 0 for d in firsts):
        return None
    return firsts[0]


def choose_batches(request: BenchRequest, graph) -> list[int]:
    requested = parse_counts("--batch", request.batch) if request.batch is not None else None
    fixed = fixed_batch(graph)
    if fixed is None:
        return requested or DEFAULT_BATCHES
    if requested not in (None, [fixed]):
        raise IrcError(f"--batch: {request.model} has a fixed batch size of {fixed}; use --batch {fixed} "
                       "or import it with --dynamic-batch")
    return [fixed]


@contextmanager
def work_directory(path: Path | None) -> Iterator[Path]:
    """--work DIR (kept; a previous bench's contents are reused), else a temporary directory."""
    if path is None:
        temp = Path(tempfile.mkdtemp(prefix="irc-bench-"))
        try:
            yield temp
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        return
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / WORK_MARKER).exists())):
        raise IrcError(f"--work: {path} exists and is not an irc bench directory; give a new or empty one")
    path.mkdir(parents=True, exist_ok=True)
    (path / WORK_MARKER).write_text("scratch directory of irc bench: its contents are replaced by each run\n")
    yield path


@contextmanager
def progress() -> Iterator[harness.Step]:
    """A spinner on stderr naming the current step, when stderr is a terminal; silent otherwise."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda message: None
        return
    with console.status("irc bench: starting") as status:
        yield lambda message: status.update(f"irc bench: {message}")


def validate(request: BenchRequest):
    """Every argument checked before any work: the loaded graph, batches, threads, engines."""
    from ..ir.onnx_io import load

    check_model(request.model)
    threads = parse_counts("--threads", request.threads)
    against = parse_against(request.against)
    if request.runs is not None and request.runs < 1:
        raise IrcError(f"--runs: expected a positive integer, got {request.runs}")
    if not request.budget > 0:
        raise IrcError(f"--budget: expected a positive number of seconds, got {request.budget}")
    graph = load(request.model)
    return graph, choose_batches(request, graph), threads, against


def run_bench(request: BenchRequest) -> dict:
    """Emit, build, verify and time ``request.model``; the result as a JSON-ready dict."""
    from ..oracle import random_inputs

    graph, batches, threads, against = validate(request)
    with work_directory(request.work) as work:
        settings = harness.Settings(work=work, batches=batches, threads=threads, against=against,
                                    python=request.python, budget=request.budget, runs=request.runs)
        with progress() as step:
            bench = harness.Bench(settings, step)
            if not bench.irc_ok:
                raise IrcError(bench.irc_reason)
            case = harness.ModelCase(_case_name(request.model), request.model,
                                     lambda batch: random_inputs(graph, batch, SEED))
            rows, build = bench.run_model(case)
    if build is None or "error" in build:
        raise IrcError(f"{request.model}: cannot build the crate: {(build or {}).get('error', 'irc disabled')}")
    return {"model": str(request.model), "verified": harness.all_verified(rows),
            "irc": {"crate": irc_engine.crate_name(case.name), "build": build,
                    "measured_via": rows[0]["ratios"]["irc_measured_via"] if rows else None},
            "rows": rows, "settings": settings.as_dict(), "machine": harness.machine_info()}


def _case_name(model: Path) -> str:
    return model.stem.split(".")[0] or "model"


def render(result: dict) -> None:
    """The result as text on stdout: what was verified, the build, one table row per engine and config."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(_verdict(result), highlight=False, soft_wrap=True)
    console.print(_build_line(result), highlight=False, soft_wrap=True)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("config", "engine", "median µs", "p90 µs", "samples/s", "RSS MiB", "irc ÷"):
        table.add_column(column, justify="left" if column in ("config", "engine") else "right", no_wrap=True)
    for row in result["rows"]:
        engines = [e for e in ENGINE_LABELS if e in row["engines"]]
        for i, engine in enumerate(engines):
            config = f"b{row['batch']} t{row['threads']}" if i == 0 else ""
            table.add_row(config, ENGINE_LABELS[engine], *_figures(row["engines"][engine]),
                          _ratio_cell(row["ratios"], engine), end_section=i == len(engines) - 1)
    console.print(table)
    via = ENGINE_LABELS.get(result["irc"]["measured_via"] or "", "irc")
    console.print(f"config: b batch, t threads. irc ÷: median latency of {via} over the engine's (< 1: irc "
                  "is faster). Same inputs, interleaved runs: read the ratios, not the times. tract runs on "
                  "one thread; RSS is each process's peak.", highlight=False, soft_wrap=True)
    for row in result["rows"]:
        for engine, entry in row["engines"].items():
            if entry.get("error"):
                console.print(f"b{row['batch']} t{row['threads']} {engine}: {entry['error']}", highlight=False,
                              soft_wrap=True)


def _verdict(result: dict) -> str:
    errors = [e.get("max_abs_err") for row in result["rows"] for e in row["engines"].values()
              if e.get("max_abs_err") is not None]
    atol, rtol = result["settings"]["tolerance_atol_rtol"]
    if result["verified"]:
        return (f"{result['model']}: every engine matches onnxruntime (max abs error {max(errors, default=0):.2g}; "
                f"atol {atol:g}, rtol {rtol:g})")
    return f"{result['model']}: NOT VERIFIED: some engine failed or differs from onnxruntime (below); it was not timed"


def _build_line(result: dict) -> str:
    b = result["irc"]["build"]
    line = (f"crate {result['irc']['crate']}: cargo build --release {b['build_seconds']:.1f} s"
            f"{' (cached)' if b['cached'] else ''}, binary {b['binary_bytes'] / 2**20:.2f} MiB, "
            f"Rust source {b['source_bytes'] / 1024:.0f} KiB")
    if b["python_binding"]:
        line += f"; Python binding built in {b['python_build_seconds']:.1f} s"
    else:
        line += "; no Python binding" + (f" ({'; '.join(b['notes'])})" if b["notes"] else "")
    flags = " ".join(b["emit_flags"])
    return line + (f"; irc emit {flags}" if flags else "")


def _figures(entry: dict) -> list[str]:
    if entry.get("median_us") is None:
        return ["error" if entry.get("error") else "not timed", "", "", _num(entry.get("peak_rss_mb"), "{:.1f}")]
    return [_latency(entry["median_us"]), _latency(entry["p90_us"]),
            _num(entry["throughput_per_s"], "{:,.0f}"), _num(entry.get("peak_rss_mb"), "{:.1f}")]


def _latency(us: float) -> str:
    return "< 1" if us == 0 else f"{us:,.1f}"  # the native loop counts whole microseconds


def _ratio_cell(ratios: dict, engine: str) -> str:
    return _num(ratios.get(f"irc/{engine}"), "{:.2f}x") if engine in harness.ENGINES else ""


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else fmt.format(x)
