"""What `irc import` prints: a human summary on stderr, or one JSON document."""

from __future__ import annotations

from pathlib import Path

from onnx import helper

from ..ir import Value
from . import ImportResult


def _dtype_name(value: Value) -> str | None:
    if value.dtype is None:
        return None
    return helper.tensor_dtype_to_np_dtype(value.dtype).name


def _io(value: Value) -> dict:
    shape = None if value.shape is None else [d for d in value.shape]
    return {"name": value.name, "dtype": _dtype_name(value), "shape": shape}


def summary(result: ImportResult, out: Path | None, written: bool) -> dict:
    """The import as a JSON-ready dict."""
    graph = result.graph
    return {
        "source": result.source.label,
        "framework": result.framework,
        "output": str(out) if out else None,
        "written": written,
        "opset": graph.model.opset_imports.get("", graph.model.opset_imports.get("ai.onnx")),
        "nodes": graph.num_ops,
        "inputs": [_io(v) for v in graph.inputs if v.name not in graph.initializers],
        "outputs": [_io(v) for v in graph.outputs],
        "notes": result.notes,
        "check": [r.as_dict() for r in result.checks],
        "ok": result.ok,
    }


def text_lines(result: ImportResult) -> list[str]:
    """Human-readable lines: the conversion and each check's per-output error."""
    lines = [f"{result.source.label}: {result.framework} -> ONNX, {result.graph.num_ops} nodes"]
    lines += [f"  {note}" for note in result.notes]
    for report in result.checks:
        lines += report.lines()
    return lines
