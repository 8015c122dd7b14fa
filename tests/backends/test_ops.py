"""Every op-family model, emitted into one crate, built by cargo and compared with onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from irc.oracle import compare

from .conftest import needs_cargo
from .op_models import build

CASES = [(fam, key) for fam, models in build().items() for key in models]


@needs_cargo
@pytest.mark.parametrize(("family", "key"), CASES, ids=[f"{f}-{k}" for f, k in CASES])
def test_op_matches_onnxruntime(op_results, family, key):
    case, expected = op_results[f"m_{family}_{key}"]
    assert case.error is None, f"{case.stage}: {case.error}"
    actual = dict(zip(case.output_names, case.outputs, strict=True))
    diffs = compare(expected, actual)
    for d in diffs:
        assert d.ok, f"{d.name}: max_abs={d.max_abs} max_rel={d.max_rel} {d.detail}"
    for name, exp in expected.items():
        assert actual[name].dtype == np.asarray(exp).dtype
