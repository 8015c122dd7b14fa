"""Round trip ONNX -> IR -> ONNX over every model the onnx package ships for its backend tests.

Each model must come back as the very same protobuf, pass the checker wherever
the original does, and give bit-identical onnxruntime outputs on the test's own
inputs wherever onnxruntime runs the original deterministically.
"""

from __future__ import annotations

import onnx
import pytest
from corpus import Case, data_models, feeds_for, node_cases, same_bits

from irc.ir import from_onnx, load, save, to_onnx
from irc.oracle import session


def _checker_ok(model: onnx.ModelProto) -> bool:
    try:
        onnx.checker.check_model(model, full_check=True)
        return True
    except Exception:
        return False


def _run(model: onnx.ModelProto, feeds: dict) -> list | None:
    try:
        sess = session(model, optimize=False)
        return sess.run(None, feeds)
    except Exception:
        return None


def _round_trip_problem(case: Case, model2: onnx.ModelProto) -> str | None:
    """Why ``model2`` is not a lossless round trip of ``case.model``; None if it is.

    Adds the case to ``_COMPARED`` when onnxruntime outputs were compared."""
    if model2 != case.model:
        return "protobuf differs"
    if _checker_ok(case.model) and not _checker_ok(model2):
        return "checker fails after round trip"
    feeds = feeds_for(case)
    first = _run(case.model, feeds)
    if first is None:
        return None  # onnxruntime cannot run the original: nothing to compare
    again = _run(case.model, feeds)
    if not all(same_bits(a, b) for a, b in zip(first, again, strict=True)):
        return None  # nondeterministic op (random generators): outputs cannot be compared
    after = _run(model2, feeds)
    if after is None:
        return "onnxruntime fails after round trip"
    if not all(same_bits(a, b) for a, b in zip(first, after, strict=True)):
        return "outputs differ"
    _COMPARED.add(case.name)
    return None


_COMPARED: set[str] = set()


def _report(kind: str, cases: tuple[Case, ...], check, summary_line) -> None:
    failures = {}
    for case in cases:
        problem = check(case)
        if problem:
            failures[case.name] = problem
    passed = len(cases) - len(failures)
    compared = sum(c.name in _COMPARED for c in cases)
    summary_line(f"{passed}/{len(cases)} round-trip ({kind}; {compared} with bit-identical onnxruntime outputs)")
    assert compared > 0.7 * len(cases), "too few models ran on onnxruntime for the check to mean much"
    assert not failures, f"{len(failures)} failures: " + ", ".join(
        f"{k}: {v}" for k, v in list(failures.items())[:20])


def test_node_cases_round_trip(summary_line):
    cases = node_cases()
    assert len(cases) > 1500
    _report("node test cases", cases, lambda c: _round_trip_problem(c, to_onnx(from_onnx(c.model))), summary_line)


def test_data_models_round_trip_through_files(tmp_path, summary_line):
    cases = data_models()
    assert len(cases) >= 100

    def through_disk(case: Case) -> str | None:
        out = tmp_path / (case.name.replace("/", "__") + ".onnx")
        save(load(case.path), out)
        return _round_trip_problem(case, onnx.load(out))

    _report("backend data models", cases, through_disk, summary_line)


@pytest.mark.parametrize("kind", ["light", "pytorch-converted", "pytorch-operator", "simple"])
def test_every_data_kind_present(kind):
    assert any(c.name.startswith(kind + "/") for c in data_models())
