"""What the user pointed at: a file, a directory or a Python spec, and which framework reads it."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from onnx import ModelProto

from ..errors import IrcError, ModelError

FRAMEWORK_ALIASES = {
    "onnx": "onnx",
    "tensorflow": "tensorflow", "tf": "tensorflow", "keras": "tensorflow", "tflite": "tensorflow",
    "pytorch": "pytorch", "torch": "pytorch",
}
EXTRAS = {"tensorflow": ("tensorflow", "tf2onnx"), "pytorch": ("torch", "onnxscript")}
EXTRA_NAME = {"tensorflow": "tf", "pytorch": "torch"}

SUFFIXES = {
    ".onnx": "onnx",
    ".keras": "tensorflow", ".h5": "tensorflow", ".hdf5": "tensorflow", ".tflite": "tensorflow",
    ".pt2": "pytorch",
}
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin"}
PY_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

Reference = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
"""Runs the source model on feeds keyed by ONNX input name; outputs keyed by ONNX output name."""


@dataclass
class Source:
    """A model to import: a path, or a Python object named by ``pkg.module:attr``."""

    spec: str
    framework: str
    path: Path | None = None
    obj: Any = None

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else self.spec


@dataclass
class Conversion:
    """What a frontend hands back: the ONNX model and a way to run the original for the check."""

    model: ModelProto
    reference: Reference | None
    framework: str
    notes: list[str] = field(default_factory=list)
    renames: dict[str, str] = field(default_factory=dict)
    """Graph input/output names to change (converter's name -> the user's name)."""
    input_order: list[str] | None = None
    output_order: list[str] | None = None
    """The source's order of inputs/outputs (final names), when the converter's differs."""


def normalize_framework(name: str | None) -> str | None:
    if name is None:
        return None
    key = name.strip().lower()
    if key not in FRAMEWORK_ALIASES:
        raise IrcError(f"--framework {name!r}: expected one of onnx, tensorflow (tf, keras, tflite), "
                       "pytorch (torch)")
    return FRAMEWORK_ALIASES[key]


def avoid_llvm_clash() -> None:
    """TensorFlow and Triton each link their own LLVM: importing Triton after TensorFlow aborts
    the process ("Option ... registered more than once"). torch.export imports Triton only for GPU
    kernels, which irc never uses, so once TensorFlow is (about to be) loaded, Triton is made
    unimportable. Call it before importing TensorFlow or exporting with torch."""
    if "triton" not in sys.modules:
        sys.modules["triton"] = None  # type: ignore[assignment]


def require(framework: str) -> None:
    """Fail with the pip extra to install when a framework's packages are missing."""
    missing = [m for m in EXTRAS.get(framework, ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise IrcError(f"importing a {framework} model needs {', '.join(missing)}, which is not installed: "
                       f"pip install 'irc[{EXTRA_NAME[framework]}]'")


def refuse_pickle(path: Path) -> None:
    raise IrcError(
        f"{path}: refusing to unpickle a {path.suffix} file: loading a pickle runs whatever code the file "
        "contains (arbitrary code execution). Pass a Python spec 'pkg.module:factory' that builds the "
        "nn.Module (load weights there with torch.load(..., weights_only=True)), or save an "
        "ExportedProgram with torch.export.save(torch.export.export(model, args), 'model.pt2')")


def detect(spec: str, framework: str | None = None) -> Source:
    """Decide which frontend reads ``spec`` (``framework`` overrides what the path suggests)."""
    framework = normalize_framework(framework)
    path = Path(spec)
    if path.exists():
        return Source(spec, framework or _framework_of_path(path), path=path)
    if PY_SPEC.match(spec):
        obj = resolve_python_spec(spec)
        detected, obj = framework_of_object(obj, spec)
        return Source(spec, framework or detected, obj=obj)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        refuse_pickle(path)
    raise ModelError(f"{spec}: no such file or directory (nor a Python spec 'pkg.module:attr')")


def detect_object(obj: Any, framework: str | None = None) -> Source:
    """A model object passed to the Python API: nn.Module, ExportedProgram, Keras model, tf.function."""
    framework = normalize_framework(framework)
    label = f"<{type(obj).__name__}>"
    detected, obj = framework_of_object(obj, label)
    return Source(label, framework or detected, obj=obj)


def _framework_of_path(path: Path) -> str:
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            return "tensorflow"
        raise ModelError(f"{path}: a directory but not a TensorFlow SavedModel (no saved_model.pb)")
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        refuse_pickle(path)
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    if suffix == ".pb":
        raise ModelError(f"{path}: a bare .pb is ambiguous; pass the SavedModel directory that contains it")
    raise ModelError(f"{path}: cannot tell the format from the suffix {suffix!r}; expected .onnx, a "
                     "SavedModel directory, .keras, .h5, .tflite, .pt2, or use --framework")


def resolve_python_spec(spec: str) -> Any:
    """Import ``pkg.module`` and fetch ``attr`` (dotted); the current directory is importable."""
    module_name, _, attr_path = spec.partition(":")
    cwd = str(Path.cwd())
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(f"{spec}: cannot import module {module_name!r} ({exc})") from None
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ModelError(f"{spec}: module {module_name!r} has no attribute {attr_path!r}") from None
    return obj


def _mro_modules(obj: Any) -> list[str]:
    return [cls.__module__ or "" for cls in type(obj).__mro__]


def is_torch_object(obj: Any) -> bool:
    return any(m.startswith("torch") for m in _mro_modules(obj))


def is_tf_object(obj: Any) -> bool:
    return any(m.split(".")[0] in ("keras", "tensorflow", "tf_keras") for m in _mro_modules(obj))


def framework_of_object(obj: Any, spec: str) -> tuple[str, Any]:
    """Framework of a Python object and the model itself: a factory is called once to find out."""
    for candidate in (obj, None):
        if candidate is None:
            if not callable(obj):
                break
            candidate = call_factory(obj, spec)
        if is_torch_object(candidate):
            return "pytorch", candidate
        if is_tf_object(candidate):
            return "tensorflow", candidate
    raise ModelError(f"{spec}: is a {type(obj).__name__}, not an nn.Module, a Keras model or a "
                     "tf.function (nor a zero-argument factory returning one)")


def call_factory(obj: Any, spec: str) -> Any:
    """Call a zero-argument factory (function or class) and return what it built."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        signature = None
    if signature is not None and any(
            p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            for p in signature.parameters.values()):
        raise ModelError(f"{spec}: a factory must take no arguments, this one takes {signature}")
    try:
        return obj()
    except IrcError:
        raise
    except Exception as exc:
        raise ModelError(f"{spec}: the factory raised {type(exc).__name__}: {exc}") from None

