"""The test corpus every part of irc is checked on: models the `onnx` package ships.

- node cases: `onnx.backend.test.case.node.collect_testcases()` (model + inputs + expected outputs)
- data models: `onnx/backend/test/data/{light,pytorch-converted,pytorch-operator,simple}`
  (model + the test's own input files; the light zoo ships no inputs, so those get
  seeded random ones)
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import ModelProto, numpy_helper

ONNX_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
DATA_KINDS = ("light", "pytorch-converted", "pytorch-operator", "simple")


@dataclass
class Case:
    name: str
    model: ModelProto
    feeds: dict[str, object] | None  # None: make seeded random inputs
    expected: dict[str, object] = field(default_factory=dict)
    path: Path | None = None


def _input_names(model: ModelProto) -> list[str]:
    inits = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


@functools.cache
def node_cases() -> tuple[Case, ...]:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    result = []
    for c in cases:
        inputs, outputs = c.data_sets[0] if c.data_sets else ([], [])
        names = _input_names(c.model)
        feeds = dict(zip(names, inputs, strict=False))
        expected = dict(zip([o.name for o in c.model.graph.output], outputs, strict=False))
        result.append(Case(c.name, c.model, feeds, expected))
    return tuple(result)


def _read_proto(path: Path, type_proto: onnx.TypeProto) -> object:
    data = path.read_bytes()
    if type_proto.HasField("sequence_type"):
        seq = onnx.SequenceProto()
        seq.ParseFromString(data)
        return numpy_helper.to_list(seq)
    if type_proto.HasField("optional_type"):
        opt = onnx.OptionalProto()
        opt.ParseFromString(data)
        return numpy_helper.to_optional(opt)
    tensor = onnx.TensorProto()
    tensor.ParseFromString(data)
    return numpy_helper.to_array(tensor)


@functools.cache
def data_models() -> tuple[Case, ...]:
    cases = []
    for kind in DATA_KINDS:
        root = ONNX_DATA / kind
        for model_path in sorted(root.glob("*.onnx")) + sorted(root.glob("*/model.onnx")):
            model = onnx.load(model_path)
            name = f"{kind}/{model_path.parent.name if model_path.name == 'model.onnx' else model_path.stem}"
            feeds, expected = None, {}
            data_dir = model_path.parent / "test_data_set_0"
            if model_path.name == "model.onnx" and data_dir.is_dir():
                inits = {t.name for t in model.graph.initializer}
                ins = [i for i in model.graph.input if i.name not in inits]
                feeds = {
                    vi.name: _read_proto(data_dir / f"input_{k}.pb", vi.type)
                    for k, vi in enumerate(ins)
                }
                expected = {
                    vi.name: _read_proto(data_dir / f"output_{k}.pb", vi.type)
                    for k, vi in enumerate(model.graph.output)
                    if (data_dir / f"output_{k}.pb").exists()
                }
            cases.append(Case(name, model, feeds, expected, model_path))
    return tuple(cases)


def feeds_for(case: Case, seed: int = 0) -> dict[str, object]:
    """The case's own inputs, or seeded random ones from the oracle."""
    if case.feeds is not None:
        return case.feeds
    from irc.ir import from_onnx
    from irc.oracle import random_inputs

    return random_inputs(from_onnx(case.model), seed=seed)


def same_bits(a: object, b: object) -> bool:
    """Bit-identical outputs (tensors, sequences, optionals)."""
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(same_bits(x, y) for x, y in zip(a, b, strict=True)))
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return bool(np.array_equal(a, b))
    return a.tobytes() == b.tobytes()
