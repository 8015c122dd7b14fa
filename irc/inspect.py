"""`irc inspect`: what a model takes, returns, uses and weighs."""

from __future__ import annotations

from pathlib import Path

from onnx import helper

from .errors import ModelError
from .ir import Graph, Value
from .ir.onnx_io import load


def _dtype_name(value: Value) -> str:
    if value.dtype is None:
        return "?" if value.type_proto is None else str(value.type_proto).split("{")[0].strip()
    return helper.tensor_dtype_to_string(value.dtype).removeprefix("TensorProto.").lower()


def _shape(value: Value) -> list | None:
    return None if value.shape is None else [d if d is not None else "?" for d in value.shape]


def check_model(path: Path) -> None:
    """Run onnx's full checker; a failure is a ModelError naming the file."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"{path}: invalid ONNX model: {first}") from None
    except onnx.shape_inference.InferenceError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"{path}: invalid ONNX model: {first}") from None


def summarize_graph(graph: Graph) -> dict:
    count, nbytes = 0, 0
    nodes = 0
    for g in graph.all_graphs():
        c, b = g.parameter_stats()
        count, nbytes, nodes = count + c, nbytes + b, nodes + g.num_ops
    io = lambda vs: [{"name": v.name, "dtype": _dtype_name(v), "shape": _shape(v)} for v in vs]  # noqa: E731
    return {
        "name": graph.name,
        "inputs": io(v for v in graph.inputs if v.name not in graph.initializers),
        "outputs": io(graph.outputs),
        "opsets": dict(graph.model.opset_imports) if graph.model else {},
        "ir_version": graph.model.ir_version if graph.model else None,
        "producer": f"{graph.model.producer_name} {graph.model.producer_version}".strip() if graph.model else "",
        "nodes": nodes,
        "ops": graph.op_histogram(),
        "parameters": count,
        "parameter_bytes": nbytes,
    }


def summarize(path: Path) -> dict:
    graph = load(path)
    check_model(path)
    return {"file": str(path), **summarize_graph(graph)}


def _human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def render_table(summary: dict) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    # Model-controlled names may contain [brackets]: never read them as rich markup.
    console = Console(width=None if sys.stdout.isatty() else 160, markup=False, highlight=False)
    console.print(f"{summary['file']}  graph {summary['name']!r}  "
                  f"ir_version {summary['ir_version']}  producer {summary['producer'] or '?'}")
    io = Table("", "name", "dtype", "shape", box=None, pad_edge=False)
    for kind in ("inputs", "outputs"):
        for v in summary[kind]:
            shape = "?" if v["shape"] is None else "[" + ", ".join(map(str, v["shape"])) + "]"
            io.add_row(kind[:-1], v["name"], v["dtype"], shape)
    console.print(io)
    opsets = ", ".join(f"{d or 'ai.onnx'}={v}" for d, v in summary["opsets"].items())
    console.print(f"opsets: {opsets}")
    console.print(f"nodes: {summary['nodes']}   parameters: {summary['parameters']:,} "
                  f"({_human_bytes(summary['parameter_bytes'])})")
    ops = Table("op", "count", box=None, pad_edge=False)
    for op, n in summary["ops"].items():
        ops.add_row(op, str(n))
    console.print(ops)


__all__ = ["check_model", "summarize", "summarize_graph", "render_table", "ModelError"]
