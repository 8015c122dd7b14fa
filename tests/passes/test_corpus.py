"""Every pass, at levels 2 and 3, over the whole corpus: the onnx package's node test
cases and backend test models. onnx.checker passes on the result, onnxruntime gives
the same outputs before and after, and nothing crashes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from corpus import data_models, feeds_for, node_cases

from irc import oracle
from irc.ir import from_onnx, to_onnx
from irc.passes import optimize

# Cases that cannot take part, with the reason. Empty today: a case onnxruntime cannot
# run (sequence/float8 inputs, ops newer than onnxruntime) is still optimized and checked.
EXCLUDED: dict[str, str] = {}


def _cases():
    return [pytest.param(c, id=c.name) for c in node_cases() + data_models()]


def _tensor_feeds(case):
    try:
        feeds = feeds_for(case) if case.feeds is not None else oracle.random_inputs(from_onnx(case.model))
    except Exception as exc:
        return None, f"no inputs: {exc}"
    feeds = {k: np.asarray(v) if isinstance(v, np.generic) else v for k, v in feeds.items()}
    if any(not isinstance(v, np.ndarray) for v in feeds.values()):
        return None, "sequence, optional or TensorProto-typed (float8/int4) inputs"
    return feeds, ""


def _checker_ok(model) -> bool:
    try:
        onnx.checker.check_model(model)
        return True
    except Exception:
        return False


@pytest.mark.parametrize("case", _cases())
def test_optimize_preserves_outputs(case):
    """Where onnxruntime runs the original, outputs must match; everywhere, the passes
    must not crash and must keep a checker-valid model checker-valid."""
    if case.name in EXCLUDED:
        pytest.skip(EXCLUDED[case.name])
    feeds, _ = _tensor_feeds(case)
    expected = None
    if feeds is not None:
        try:
            expected = oracle.run(case.model, feeds, optimize=False)
        except Exception:
            expected = None  # onnxruntime cannot run the original: nothing to compare against
    valid = _checker_ok(case.model)
    base_dir = str(case.path.parent) if case.path is not None else None
    for level in (2, 3):
        graph = from_onnx(case.model, base_dir=base_dir)
        optimize(graph, level)
        after = to_onnx(graph)
        if valid:
            onnx.checker.check_model(after)
        if expected is not None:
            actual = oracle.run(after, feeds, optimize=False)
            bad = [d for d in oracle.compare(expected, actual) if not d.ok]
            assert not bad, f"level {level}: {bad}"
