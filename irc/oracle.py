"""onnxruntime as the numerical oracle: sessions, seeded inputs, comparison with tolerances."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from onnx import ModelProto, TensorProto, helper

from .errors import ModelError
from .ir import Graph, Value

DEFAULT_BATCH = 2
DEFAULT_DIM = 4
"""Size given to a symbolic dimension other than the batch when making inputs."""


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float


TOLERANCES = {
    np.dtype(np.float16): Tolerance(1e-2, 1e-2),
    np.dtype(np.float32): Tolerance(1e-4, 1e-4),
    np.dtype(np.float64): Tolerance(1e-9, 1e-9),
}
EXACT = Tolerance(0.0, 0.0)


def tolerance_for(dtype: np.dtype) -> Tolerance:
    """Default tolerance per dtype: exact for integers and bools."""
    return TOLERANCES.get(np.dtype(dtype), EXACT if np.dtype(dtype).kind in "biuUSO" else Tolerance(1e-2, 1e-2))


def session(model: ModelProto | str | os.PathLike, threads: int = 1, optimize: bool = True):
    """An onnxruntime InferenceSession on the CPU."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = model.SerializeToString() if isinstance(model, ModelProto) else str(model)
    try:
        return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"onnxruntime cannot load the model: {str(exc).splitlines()[0]}") from None


def run(model: ModelProto | str | os.PathLike, feeds: dict[str, np.ndarray],
        threads: int = 1, optimize: bool = True) -> dict[str, np.ndarray]:
    """Run onnxruntime once; outputs by name."""
    sess = session(model, threads, optimize)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds), strict=True))


def random_array(rng: np.random.Generator, dtype: np.dtype, shape: tuple[int, ...],
                 elem_type: int | None = None) -> np.ndarray:
    dtype = np.dtype(dtype)
    if elem_type == TensorProto.BOOL or dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        return rng.integers(0, 3, size=shape).astype(dtype)
    if dtype.kind == "f" or dtype.kind == "V":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "OUS":
        return np.array(rng.choice(["a", "b", "c"], size=shape), dtype=object)
    raise ModelError(f"cannot make random data of dtype {dtype}")


@dataclass
class OutputDiff:
    name: str
    max_abs: float
    max_rel: float
    max_ulp: float
    ok: bool
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def ulp_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance in units in the last place between float arrays of the same dtype."""
    if a.dtype.kind != "f" or a.dtype != b.dtype or a.size == 0:
        return 0.0
    bits = {2: np.int16, 4: np.int32, 8: np.int64}[a.dtype.itemsize]
    magnitude = np.iinfo(bits).max  # every bit but the sign

    def line(x: np.ndarray) -> np.ndarray:
        """Sign-magnitude float bits mapped onto a monotonic line (as float64: no overflow)."""
        raw = x.view(bits)
        return np.where(raw < 0, -(raw & magnitude).astype(np.float64), raw.astype(np.float64))

    finite = np.isfinite(a) & np.isfinite(b)
    return float(np.max(np.abs(line(a) - line(b))[finite], initial=0))


def compare_arrays(name: str, expected: np.ndarray, actual: np.ndarray,
                   tol: Tolerance | None = None) -> OutputDiff:
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        return OutputDiff(name, float("inf"), float("inf"), float("inf"), False,
                          f"shape {actual.shape} != expected {expected.shape}")
    if expected.dtype.kind in "OUS":
        same = bool(np.array_equal(expected, actual))
        return OutputDiff(name, 0.0 if same else float("inf"), 0.0 if same else float("inf"), 0.0, same)
    tol = tol or tolerance_for(expected.dtype)
    e = expected.astype(np.float64)
    a = actual.astype(np.float64)
    both_nan = np.isnan(e) & np.isnan(a)
    same_inf = np.isinf(e) & (e == a)
    with np.errstate(invalid="ignore"):  # inf - inf where both are equal infinities
        diff = np.where(both_nan | same_inf, 0.0, np.abs(e - a))
    diff = np.where(np.isnan(diff), np.inf, diff)
    rel = diff / np.maximum(np.abs(e), np.finfo(np.float64).tiny)
    max_abs = float(diff.max(initial=0.0))
    max_rel = float(np.where(diff == 0, 0.0, rel).max(initial=0.0))
    ok = bool(np.all(diff <= tol.atol + tol.rtol * np.abs(np.where(np.isfinite(e), e, 0))))
    ulp = ulp_distance(expected, actual.astype(expected.dtype)) if expected.dtype.kind == "f" else 0.0
    return OutputDiff(name, max_abs, max_rel, ulp, ok)


def compare(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray],
            tol: Tolerance | None = None) -> list[OutputDiff]:
    """Compare outputs by name; a missing output is a failure."""
    diffs = []
    for name, exp in expected.items():
        if name not in actual:
            diffs.append(OutputDiff(name, float("inf"), float("inf"), float("inf"), False, "missing"))
        else:
            diffs.append(compare_arrays(name, exp, actual[name], tol))
    return diffs


def save_feeds(feeds: dict[str, np.ndarray], directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for i, (name, array) in enumerate(feeds.items()):
        paths[name] = directory / f"input_{i}.npy"
        np.save(paths[name], array)
    return paths


# -- inputs that respect each input's domain -------------------------------------------

_INDEX_SLOTS = {"Gather": (1, 0), "GatherElements": (1, 0), "GatherND": (1, None),
                "ScatterElements": (1, 0), "ScatterND": (1, None), "Embedding": (1, 0)}
_POSITIVE_SLOTS = {"Log": 0, "Sqrt": 0, "Pow": 0, "Reciprocal": 0, "Rsqrt": 0}


def random_inputs(graph: Graph, batch: int = DEFAULT_BATCH, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random feeds for every graph input that is not an initializer, each
    respecting what reads it.

    Floats are standard normal; other integers small and non-negative (they are
    usually indices, lengths or token ids). An integer input used as indices (Gather, GatherElements, GatherND, Scatter*)
    stays within the indexed axis of the data; a float input fed to Log, Sqrt,
    Reciprocal or a Pow base is positive; booleans stay booleans. A symbolic dim
    gets the same size in every input that names it.
    """
    rng = np.random.default_rng(seed)
    sizes: dict[str, int] = {}
    feeds = {}
    for value in graph.inputs:
        if value.name in graph.initializers:
            continue
        if value.dtype is None:
            raise ModelError(f"input {value.name!r} has no tensor type; pass the inputs explicitly")
        dtype = helper.tensor_dtype_to_np_dtype(value.dtype)
        shape = _consistent_shape(value, batch, sizes)
        array = random_array(rng, dtype, shape, value.dtype)
        feeds[value.name] = _respect_domain(graph, value, array, rng, sizes, batch)
    return feeds


def _consistent_shape(value: Value, batch: int, sizes: dict[str, int]) -> tuple[int, ...]:
    if value.shape is None:
        return (batch,)
    dims = []
    for i, d in enumerate(value.shape):
        if isinstance(d, int) and d >= 0:
            dims.append(d)
        elif isinstance(d, str):
            dims.append(sizes.setdefault(d, batch if i == 0 else DEFAULT_DIM))
        else:
            dims.append(batch if i == 0 else DEFAULT_DIM)
    return tuple(dims)


def _respect_domain(graph: Graph, value: Value, array: np.ndarray, rng: np.random.Generator,
                    sizes: dict[str, int], batch: int) -> np.ndarray:
    for op, slot in graph.uses(value):
        if op.domain not in ("", "ai.onnx"):
            continue
        if array.dtype.kind in "iu" and _INDEX_SLOTS.get(op.op_type, (None,))[0] == slot:
            bound = _indexed_extent(op, sizes, batch)
            if bound:
                return rng.integers(0, bound, size=array.shape).astype(array.dtype)
        if array.dtype.kind == "f" and _POSITIVE_SLOTS.get(op.op_type) == slot:
            return (np.abs(array) + np.asarray(0.1, array.dtype)).astype(array.dtype)
    return array


def _indexed_extent(op, sizes: dict[str, int], batch: int) -> int | None:
    """Size of the axis the op indexes (the smallest dim for GatherND/ScatterND)."""
    data = op.input(0)
    if data is None or data.shape is None:
        return None
    dims = list(_consistent_shape(data, batch, sizes))
    if not dims:
        return None
    axis = _INDEX_SLOTS[op.op_type][1]
    if axis is None:
        return min(dims)
    axis = int(op.attr("axis", axis))
    return dims[axis] if -len(dims) <= axis < len(dims) else None
