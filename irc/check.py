"""Before/after checking of optimizations with onnxruntime, and bisection.

``check_models`` runs the model before and after on seeded, domain-respecting
random inputs and compares every output with the per-dtype tolerance of
:mod:`irc.oracle`. ``bisect`` replays the optimization pass by pass on a fresh
copy of the original and names the first pass that changes the outputs, then
the first node (in the rewritten graph's order) whose value diverges.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from onnx import ModelProto, helper

from . import oracle
from .errors import IrcError
from .ir import Graph, load, to_onnx

ModelLike = ModelProto | str | os.PathLike


@dataclass
class CheckResult:
    ok: bool
    skipped: str = ""
    diffs: list[dict] = field(default_factory=list)
    first_bad_pass: str | None = None
    first_bad_node: str | None = None

    def as_dict(self) -> dict:
        return {"ok": self.ok, "skipped": self.skipped, "outputs": self.diffs,
                "first_bad_pass": self.first_bad_pass, "first_bad_node": self.first_bad_node}

    def summary(self) -> str:
        if self.skipped:
            return f"check skipped: {self.skipped}"
        if self.ok:
            worst = max((d["max_abs"] for d in self.diffs), default=0.0)
            return f"check passed: {len(self.diffs)} output(s) match onnxruntime (max abs diff {worst:.3g})"
        bad = [d for d in self.diffs if not d["ok"]]
        text = "; ".join(f"{d['name']}: max abs {d['max_abs']:.3g}, max rel {d['max_rel']:.3g} "
                         f"{d.get('detail', '')}".strip() for d in bad)
        where = ""
        if self.first_bad_pass:
            where = f"; first diverging pass: {self.first_bad_pass}"
            if self.first_bad_node:
                where += f" at node {self.first_bad_node}"
        return f"check FAILED: {text}{where}"


def _as_model(model: ModelLike | Graph) -> ModelLike:
    return to_onnx(model) if isinstance(model, Graph) else model


def check_models(before: ModelLike | Graph, after: ModelLike | Graph, *,
                 inputs_from: Graph | None = None, seed: int = 0,
                 batch: int = oracle.DEFAULT_BATCH,
                 feeds: dict[str, np.ndarray] | None = None) -> CheckResult:
    """Run both models in onnxruntime on the same inputs and compare outputs."""
    source = inputs_from if inputs_from is not None else (
        before if isinstance(before, Graph) else _graph_of(before))
    try:
        feeds = feeds if feeds is not None else oracle.random_inputs(source, batch, seed)
    except IrcError as exc:
        return CheckResult(True, skipped=str(exc))
    try:
        expected = oracle.run(_as_model(before), feeds, optimize=False)
    except Exception as exc:
        return CheckResult(True, skipped=f"onnxruntime cannot run the original model ({_first_line(exc)})")
    try:
        actual = oracle.run(_as_model(after), feeds, optimize=False)
    except Exception as exc:
        return CheckResult(False, diffs=[{"name": "*", "max_abs": float("inf"), "max_rel": float("inf"),
                                          "ok": False, "detail": f"optimized model fails: {_first_line(exc)}"}])
    diffs = [d.as_dict() for d in oracle.compare(expected, actual)]
    return CheckResult(all(d["ok"] for d in diffs), diffs=diffs)


def _graph_of(model: ModelLike) -> Graph:
    from .ir import from_onnx

    return from_onnx(model) if isinstance(model, ModelProto) else load(model)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def bisect(source: ModelLike, level: int = 2, *, seed: int = 0, **optimize_args) -> CheckResult:
    """Replay the optimization pass by pass; report the first pass and node that diverge."""
    from .passes import optimize

    original = _graph_of(source)
    feeds = oracle.random_inputs(original, oracle.DEFAULT_BATCH, seed)
    expected = oracle.run(to_onnx(original), feeds, optimize=False)
    graph = _graph_of(source)
    state = {"prev": to_onnx(graph), "found": None}

    def after_pass(name: str, g: Graph) -> None:
        if state["found"] is not None:
            return
        model = to_onnx(g)
        try:
            actual = oracle.run(model, feeds, optimize=False)
            ok = all(d.ok for d in oracle.compare(expected, actual))
        except Exception:
            ok = False
        if not ok:
            state["found"] = (name, state["prev"], model)
        state["prev"] = model

    optimize(graph, level, on_pass=after_pass, **optimize_args)
    result = check_models(to_onnx(original), to_onnx(graph), inputs_from=original, feeds=feeds)
    if state["found"] is not None:
        name, prev, bad = state["found"]
        result.ok = False
        result.first_bad_pass = name
        result.first_bad_node = _first_diverging_node(prev, bad, feeds)
    return result


def _first_diverging_node(prev: ModelProto, bad: ModelProto, feeds: dict) -> str | None:
    """The first node of ``bad`` whose output differs from the same-named value in ``prev``."""
    typed = {vi.name: vi.type.tensor_type.elem_type for vi in prev.graph.value_info
             if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type}
    order = [(out, node) for node in bad.graph.node for out in node.output if out in typed]
    if not order:
        return None
    names = [o for o, _ in order]
    try:
        ref = oracle.run(_expose(prev, names, typed), feeds, optimize=False)
        got = oracle.run(_expose(bad, names, typed), feeds, optimize=False)
    except Exception:
        return None
    for out, node in order:
        if out in ref and out in got and not oracle.compare_arrays(out, ref[out], got[out]).ok:
            return f"{node.op_type} {node.name or out} (output {out})"
    return None


def _expose(model: ModelProto, names: list[str], types: dict[str, int]) -> ModelProto:
    copy = ModelProto()
    copy.CopyFrom(model)
    existing = {o.name for o in copy.graph.output}
    produced = {o for n in copy.graph.node for o in n.output}
    for name in names:
        if name not in existing and name in produced:
            copy.graph.output.append(helper.make_tensor_value_info(name, types[name], None))
    return copy
