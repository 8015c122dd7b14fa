"""The onnx package's backend test models, and running the optimizer over one of them."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from irc import oracle
from irc.ir import from_onnx, to_onnx
from irc.passes import optimize

DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
MODEL_DIRS = ("light", "pytorch-converted", "pytorch-operator", "simple")


def node_case_dirs() -> list[str]:
    return sorted(glob.glob(os.path.join(DATA, "node", "*", "model.onnx")))


def model_files() -> list[str]:
    files = []
    for sub in MODEL_DIRS:
        files += glob.glob(os.path.join(DATA, sub, "*", "model.onnx"))
        files += glob.glob(os.path.join(DATA, sub, "*.onnx"))
    return sorted(files)


def case_name(path: str) -> str:
    rel = os.path.relpath(path, DATA)
    return rel.removesuffix("/model.onnx").removesuffix(".onnx")


def recorded_inputs(path: str, model: onnx.ModelProto) -> dict[str, np.ndarray] | None:
    """The inputs stored with a test case (test_data_set_0), by graph input name."""
    sets = sorted(glob.glob(os.path.join(os.path.dirname(path), "test_data_set_*")))
    if not sets or not path.endswith("model.onnx"):
        return None
    init = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in init]
    feeds = {}
    for i, name in enumerate(names):
        pb = os.path.join(sets[0], f"input_{i}.pb")
        if not os.path.exists(pb):
            return None
        tensor = onnx.TensorProto()
        with open(pb, "rb") as f:
            tensor.ParseFromString(f.read())
        try:
            feeds[name] = numpy_helper.to_array(tensor)
        except Exception:
            return None  # a sequence/optional input: not a plain tensor
    return feeds


@dataclass
class Outcome:
    status: str  # "ok", "skipped", "mismatch", "invalid"
    detail: str = ""
    nodes: tuple[int, int] = (0, 0)


def run_case(path: str, level: int = 2) -> Outcome:
    """Optimize one model; check onnx.checker and onnxruntime before == after."""
    model = onnx.load(path)
    feeds = recorded_inputs(path, model)
    graph = from_onnx(model, base_dir=os.path.dirname(path))
    if feeds is None:
        try:
            feeds = oracle.domain_inputs(graph, seed=0)
        except Exception as exc:
            return Outcome("skipped", f"no inputs: {exc}")
    try:
        expected = oracle.run(model, feeds, optimize=False)
    except Exception as exc:
        return Outcome("skipped", f"onnxruntime cannot run the original: {str(exc)[:120]}")
    report = optimize(graph, level)
    after = to_onnx(graph)
    nodes = (report.nodes_before, report.nodes_after)
    try:
        onnx.checker.check_model(after, full_check=False)
    except Exception as exc:
        return Outcome("invalid", f"onnx.checker: {str(exc)[:300]}", nodes)
    try:
        actual = oracle.run(after, feeds, optimize=False)
    except Exception as exc:
        return Outcome("mismatch", f"optimized model does not run: {str(exc)[:300]}", nodes)
    bad = [d for d in oracle.compare(expected, actual) if not d.ok]
    if bad:
        return Outcome("mismatch", "; ".join(f"{d.name}: abs {d.max_abs:.3g} rel {d.max_rel:.3g} {d.detail}"
                                             for d in bad), nodes)
    return Outcome("ok", "", nodes)
