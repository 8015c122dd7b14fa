"""The work behind `irc optimize`: load, optimize, save, check, report."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from ..errors import IrcError
from .manager import DEFAULT_FOLD_LIMIT, Report

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)


def parse_size(text: str | None) -> int:
    """'256M', '2G', '1048576' -> bytes."""
    if text is None:
        return DEFAULT_FOLD_LIMIT
    m = _SIZE.match(text)
    if not m:
        raise IrcError(f"--fold-limit: cannot read {text!r} as a size (e.g. 256M, 2G, 1048576)")
    factor = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * factor)


def split_names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def run_optimize(src: Path, out: Path, *, level: int, passes: str | None, skip: str | None,
                 check: bool, bisect: bool, fold_limit: str | None) -> tuple[Report, dict | None]:
    """Optimize ``src`` into ``out``; with ``check`` compare both in onnxruntime.

    On a mismatch the written output is removed and an IrcError names the
    outputs (and, with ``bisect``, the first pass and node) that diverge.
    """
    from ..check import bisect as run_bisect
    from ..check import check_models
    from ..ir import load, save
    from . import optimize

    names, skipped, limit = split_names(passes), split_names(skip), parse_size(fold_limit)
    graph = load(src)
    report = optimize(graph, level, passes=names, skip=skipped, fold_limit=limit)
    written = save(graph, out)
    if not check:
        return report, None
    result = check_models(str(src), str(written), inputs_from=load(src))
    if not result.ok and bisect:
        result = run_bisect(str(src), level, passes=names, skip=skipped, fold_limit=limit)
    report.check = result.as_dict()
    if not result.ok:
        _remove(written)
        raise IrcError(f"{result.summary()} (nothing written; rerun with --no-check to keep the output)")
    return report, result.as_dict()


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".data")):
        if p.exists():
            os.unlink(p)


def render_report(report: Report, file=sys.stderr) -> None:
    """A per-pass table on stderr."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"irc optimize: level {report.level}, {report.rounds} round(s), "
                        f"{report.seconds:.2f}s")
    for col in ("pass", "runs", "changed", "Δ nodes", "Δ params", "Δ bytes", "time (s)"):
        table.add_column(col, justify="left" if col == "pass" else "right")
    for s in report.per_pass.values():
        table.add_row(s.name, str(s.runs), str(s.changes), f"{s.nodes_delta:+d}",
                      f"{s.params_delta:+d}", f"{s.bytes_delta:+d}", f"{s.seconds:.3f}")
    table.add_row("total", "", "", f"{report.nodes_before} -> {report.nodes_after}",
                  f"{report.params_before} -> {report.params_after}",
                  f"{report.bytes_before} -> {report.bytes_after}", f"{report.seconds:.3f}")
    Console(file=file).print(table)
