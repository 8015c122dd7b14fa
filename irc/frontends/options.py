"""Options shared by every frontend, parsed once from the CLI or the Python API."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import IrcError

DEFAULT_OPSET = 18
"""Opset the converters (tf2onnx, torch.onnx) produce unless asked otherwise."""

_DTYPES = {"float32", "float16", "float64", "int32", "int64", "int8", "uint8", "bool"}
_SHAPE_RE = re.compile(r"^(?:(?P<name>[^:]+):)?(?P<dims>[^:]+)(?::(?P<dtype>[a-z0-9]+))?$")


@dataclass(frozen=True)
class InputSpec:
    """A user-given input: ``name:2,3,224,224`` or ``name:2,16:int64``.

    ``name`` is None when the user gave bare dims (allowed for one-input models).
    A dim of ``?`` or ``-1`` means "any size".
    """

    name: str | None
    shape: tuple[int | None, ...]
    dtype: str | None = None

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype or "float32")


def parse_input_shape(text: str) -> InputSpec:
    """Parse one ``--input-shape`` value; raise IrcError with the expected syntax."""
    match = _SHAPE_RE.match(text.strip())
    if not match:
        raise IrcError(f"--input-shape {text!r}: expected NAME:D0,D1,... (e.g. x:2,3,224,224)")
    dims = []
    for part in match["dims"].split(","):
        part = part.strip()
        if part in ("?", "-1", "None"):
            dims.append(None)
        elif part.isdigit():
            dims.append(int(part))
        else:
            raise IrcError(f"--input-shape {text!r}: dim {part!r} is not a non-negative integer or '?'")
    dtype = match["dtype"]
    if dtype is not None and dtype not in _DTYPES:
        raise IrcError(f"--input-shape {text!r}: dtype {dtype!r} is not one of {', '.join(sorted(_DTYPES))}")
    return InputSpec(match["name"], tuple(dims), dtype)


def parse_input_shapes(values) -> dict[str | None, InputSpec]:
    """Parse the repeatable option (strings, InputSpecs, or a name->shape dict) into name->spec."""
    if values is None:
        return {}
    if isinstance(values, dict):
        values = [v if isinstance(v, InputSpec) else InputSpec(k, tuple(v)) for k, v in values.items()]
    specs: dict[str | None, InputSpec] = {}
    for value in values:
        spec = value if isinstance(value, InputSpec) else parse_input_shape(str(value))
        if spec.name in specs:
            raise IrcError(f"--input-shape given twice for input {spec.name or '(unnamed)'!r}")
        specs[spec.name] = spec
    if None in specs and len(specs) > 1:
        raise IrcError("--input-shape without a NAME: is only allowed when it is the only one")
    return specs


@dataclass
class ImportOptions:
    """Everything `irc import` accepts; the Python API takes the same names as keywords."""

    framework: str | None = None
    signature: str = "serving_default"
    input_shapes: dict[str | None, InputSpec] = field(default_factory=dict)
    dynamic_batch: bool = False
    opset: int | None = None
    check: bool = True
    atol: float | None = None
    rtol: float | None = None
    check_batches: tuple[int, ...] = (2,)
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.input_shapes, dict) or any(
                not isinstance(v, InputSpec) for v in self.input_shapes.values()):
            self.input_shapes = parse_input_shapes(self.input_shapes)
        if self.opset is not None and not 7 <= self.opset <= 25:
            raise IrcError(f"--opset {self.opset}: expected an ONNX opset between 7 and 25")
        if any(b < 1 for b in self.check_batches):
            raise IrcError("check batches must be positive")

    @property
    def target_opset(self) -> int:
        """The opset a converter should produce."""
        return self.opset or DEFAULT_OPSET

    def shape_for(self, name: str, position: int, count: int) -> InputSpec | None:
        """The user's spec for input ``name`` (an unnamed spec applies to a single input)."""
        if name in self.input_shapes:
            return self.input_shapes[name]
        if None in self.input_shapes and count == 1 and position == 0:
            return self.input_shapes[None]
        return None

    def check_names(self, known: list[str]) -> None:
        """Reject --input-shape names the model does not have, listing the ones it has."""
        unknown = [n for n in self.input_shapes if n is not None and n not in known]
        if unknown:
            raise IrcError(f"--input-shape names {', '.join(map(repr, unknown))} not among the model's "
                           f"inputs: {', '.join(map(repr, known)) or '(none)'}")
        if None in self.input_shapes and len(known) != 1:
            raise IrcError(f"the model has {len(known)} inputs ({', '.join(map(repr, known))}): "
                           "name each --input-shape as NAME:D0,D1,...")
