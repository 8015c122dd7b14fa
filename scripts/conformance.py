"""Run the ONNX backend node test cases through import -> optimize -> emit -> build -> run.

Many cases are built into one crate (see irc.backends.rust.multi) so the whole
suite needs a few cargo builds. Writes docs/SUPPORTED_OPS.md (generated from the
passing cases only) and conformance/results.json; prints `conformance: N/M passed`
last. Fails if the pass count fell below conformance/floor.txt; raises the floor
when it rose.

Usage: python scripts/conformance.py [--filter PATTERN] [--no-floor] [--chunk N]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from irc.oracle import Tolerance, compare_arrays  # noqa: E402

EXCLUDE = ROOT / "conformance" / "exclude.txt"
FLOOR = ROOT / "conformance" / "floor.txt"
RESULTS = ROOT / "conformance" / "results.json"
DOC = ROOT / "docs" / "SUPPORTED_OPS.md"


def load_excludes(path: Path = EXCLUDE) -> list[tuple[str, str]]:
    """(pattern, reason) pairs; every entry must carry a reason."""
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pattern, _, reason = line.partition("#")
        if not reason.strip():
            raise SystemExit(f"{path}: entry {pattern.strip()!r} has no reason")
        out.append((pattern.strip(), reason.strip()))
    return out


def excluded(name: str, excludes: list[tuple[str, str]]) -> str | None:
    for pattern, reason in excludes:
        if fnmatch.fnmatchcase(name, pattern):
            return reason
    return None


def read_floor(path: Path = FLOOR) -> dict:
    values = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            values[k.strip()] = int(v.strip())
    return values


def write_floor(passed: int, total: int, path: Path = FLOOR) -> None:
    path.write_text("# Conformance floor of the Rust backend: only ever rises (scripts/conformance.py).\n"
                    f"passed = {passed}\ntotal = {total}\n")


def _is_plain(v) -> bool:
    return isinstance(v, np.ndarray | np.generic)


def collect(pattern: str | None):
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases("")
    return [c for c in cases if pattern is None or fnmatch.fnmatchcase(c.name, pattern)]


def node_info(tc, base_ops: dict[str, str]) -> tuple[str, int, list[str]]:
    """(op, opset, input dtypes) of a case; an `_expanded` case counts for the op it expands."""
    from onnx import helper

    m = tc.model
    if len(m.graph.node) == 1:
        op_type = m.graph.node[0].op_type
    else:
        base = re.sub(r"_expanded.*$", "", tc.name)
        op_type = base_ops.get(base, m.graph.node[0].op_type if m.graph.node else "?")
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), 0)
    dtypes = sorted({helper.tensor_dtype_to_string(i.type.tensor_type.elem_type).replace("TensorProto.", "").lower()
                     for i in m.graph.input if i.type.HasField("tensor_type")})
    return op_type, opset, dtypes


def single_node_ops(cases) -> dict[str, str]:
    return {c.name: c.model.graph.node[0].op_type for c in cases if len(c.model.graph.node) == 1}


def run(pattern: str | None, chunk: int, workdir: Path, log=print) -> list[dict]:
    from irc.backends.rust.multi import Case, build_and_run
    from irc.ir.onnx_io import from_onnx

    excludes = load_excludes()
    records, cases = [], []
    every = collect(None)
    base_ops = single_node_ops(every)
    chosen = [c for c in every if pattern is None or fnmatch.fnmatchcase(c.name, pattern)]
    for i, tc in enumerate(chosen):
        op_type, opset, dtypes = node_info(tc, base_ops)
        rec = dict(name=tc.name, op=op_type, opset=opset, dtypes=dtypes, status="fail", error="")
        records.append(rec)
        reason = excluded(tc.name, excludes)
        if reason:
            rec.update(status="excluded", error=reason)
            continue
        inputs, expected = tc.data_sets[0] if tc.data_sets else ([], [])
        if not all(_is_plain(x) for x in list(inputs) + list(expected)):
            rec.update(status="excluded", error="sequence/optional inputs or outputs (see exclude.txt)")
            continue
        try:
            graph = from_onnx(tc.model)
        except Exception as exc:  # noqa: BLE001 - one bad model is one failed case
            rec.update(error=f"import: {exc}"[:200])
            continue
        case = Case(f"case_{i:04d}", graph, [np.asarray(x) for x in inputs])
        case.expected, case.tol, case.rec = expected, Tolerance(max(tc.atol, 1e-6), max(tc.rtol, 1e-4)), rec
        cases.append(case)
    for start in range(0, len(cases), chunk):
        part = cases[start:start + chunk]
        t0 = time.perf_counter()
        build_and_run(part, workdir / f"chunk_{start // chunk}", name=f"conf{start // chunk}", log=log)
        log(f"chunk {start // chunk}: {len(part)} cases in {time.perf_counter() - t0:.0f}s")
    for case in cases:
        rec = case.rec
        if case.error is not None:
            rec["error"] = f"{case.stage}: {case.error}"
            continue
        diffs = [compare_arrays(f"out{k}", np.asarray(e), a, case.tol)
                 for k, (e, a) in enumerate(zip(case.expected, case.outputs, strict=False))]
        bad = [d for d in diffs if not d.ok]
        if len(case.outputs) != len(case.expected):
            rec["error"] = "output count differs"
        elif bad:
            rec["error"] = f"mismatch: {bad[0].name} max_abs={bad[0].max_abs:.3g} {bad[0].detail}"
        else:
            rec["status"] = "pass"
    return records


def write_doc(records: list[dict], path: Path = DOC) -> None:
    by_op = defaultdict(list)
    for r in records:
        if r["status"] != "excluded":
            by_op[r["op"]].append(r)
    passed = sum(r["status"] == "pass" for r in records)
    total = sum(r["status"] != "excluded" for r in records)
    lines = [
        "# Operators supported by the Rust backend",
        "",
        "Generated by `make conformance` (scripts/conformance.py) from the ONNX backend node test",
        "cases that pass through import, optimize, emit, build and run. Do not edit by hand.",
        "",
        f"Passing cases: **{passed}/{total}** (excluding {len(records) - total} cases listed with reasons",
        "in `conformance/exclude.txt`).",
        "",
        "| op | opsets (passing) | input dtypes (passing) | cases passed/total |",
        "|---|---|---|---|",
    ]
    for op_type in sorted(by_op):
        rs = by_op[op_type]
        ok = [r for r in rs if r["status"] == "pass"]
        if not ok:
            continue
        opsets = ", ".join(str(o) for o in sorted({r["opset"] for r in ok}))
        dtypes = ", ".join(sorted({d for r in ok for d in r["dtypes"]}))
        lines.append(f"| {op_type} | {opsets} | {dtypes} | {len(ok)}/{len(rs)} |")
    lines.append("")
    path.write_text("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--filter", help="fnmatch pattern of case names")
    ap.add_argument("--chunk", type=int, default=2000, help="cases per crate")
    ap.add_argument("--no-floor", action="store_true", help="do not check or update the floor")
    ap.add_argument("--workdir", type=Path, help="keep the crates here")
    ap.add_argument("--doc-only", action="store_true",
                    help="regenerate docs/SUPPORTED_OPS.md from conformance/results.json")
    args = ap.parse_args()
    if args.doc_only:
        records = json.loads(RESULTS.read_text())
        labels = {tc.name: node_info(tc, single_node_ops(cases))[0] for cases in [collect(None)] for tc in cases}
        for r in records:
            r["op"] = labels.get(r["name"], r["op"])
        RESULTS.write_text(json.dumps(records, indent=1))
        write_doc(records)
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="irc-conformance-"))
    records = run(args.filter, args.chunk, workdir)
    passed = sum(r["status"] == "pass" for r in records)
    total = sum(r["status"] != "excluded" for r in records)
    full_run = args.filter is None
    (workdir / "results.json").write_text(json.dumps(records, indent=1))
    if full_run:
        RESULTS.write_text(json.dumps(records, indent=1))
        write_doc(records)
    rc = 0
    if full_run and not args.no_floor:
        floor = read_floor() if FLOOR.exists() else {"passed": 0}
        if passed < floor.get("passed", 0):
            print(f"conformance: regression: {passed} passed, floor is {floor['passed']}")
            rc = 1
        elif passed > floor.get("passed", 0) or not FLOOR.exists():
            write_floor(passed, total)
    print(f"conformance: {passed}/{total} passed")
    return rc


if __name__ == "__main__":
    sys.exit(main())
