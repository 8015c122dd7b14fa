"""The oracle's comparison: ULP distances and per-dtype tolerances."""

from __future__ import annotations

import numpy as np
import pytest

from irc.oracle import compare_arrays, ulp_distance


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_ulp_distance_counts_representable_steps(dtype):
    a = np.array([1.0, -1.0, 3.5, -1e-3, 0.0], dtype)
    up = np.array(np.inf, dtype)
    b = a.copy()
    for _ in range(3):
        b = np.nextafter(b, up)
    assert ulp_distance(a, b) == 3.0
    assert ulp_distance(a, a) == 0.0
    assert ulp_distance(np.array([-0.0], dtype), np.array([0.0], dtype)) == 0.0
    tiny = np.nextafter(np.array([0.0], dtype), up)
    assert ulp_distance(-tiny, tiny) == 2.0


def test_compare_flags_shape_nan_and_tolerance():
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    assert compare_arrays("y", x, x).ok
    assert not compare_arrays("y", x, x.reshape(4, 3)).ok
    nan = x.copy()
    nan[0, 0] = np.nan
    assert compare_arrays("y", nan, nan).ok
    assert not compare_arrays("y", x, nan).ok
    assert not compare_arrays("y", x, x + 1e-3).ok
    ints = np.arange(6, dtype=np.int64)
    assert not compare_arrays("i", ints, ints + 1).ok
