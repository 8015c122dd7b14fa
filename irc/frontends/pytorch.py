"""PyTorch through torch.onnx's dynamo exporter (torch.export + onnxscript).

Sources are an ``nn.Module`` named by a Python spec (or a factory building one)
or an ExportedProgram saved with ``torch.export.save`` (``.pt2``). Pickled
``.pt``/``.pth`` files are never loaded: unpickling runs arbitrary code.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import re
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IrcError, ModelError, UnsupportedError
from .options import ImportOptions
from .source import PICKLE_SUFFIXES, Conversion, Source, avoid_llvm_clash, refuse_pickle, require

MIN_EXAMPLE_BATCH = 2
"""torch.export specializes a dimension of size 0 or 1, so a dynamic batch is traced at >= 2."""


def _torch():
    require("pytorch")
    if "tensorflow" in sys.modules:
        avoid_llvm_clash()
    import torch

    for name in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx", "torch.utils.flop_counter",
                 "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return torch


def convert(source: Source, options: ImportOptions) -> Conversion:
    """Convert an nn.Module / ExportedProgram object or a .pt2 file."""
    torch = _torch()
    if source.obj is not None:
        obj = source.obj
        if isinstance(obj, torch.export.ExportedProgram):
            return from_exported(obj, options, source.spec)
        if not isinstance(obj, torch.nn.Module):
            raise ModelError(f"{source.spec}: a {type(obj).__name__} is not an nn.Module")
        return from_module(obj, options, source.spec)
    path = source.path
    if path.suffix.lower() in PICKLE_SUFFIXES:
        refuse_pickle(path)
    return from_exported(load_pt2(path), options, str(path))


def load_pt2(path: Path):
    """An ExportedProgram from torch.export.save, loaded without running code from the file.

    torch.export.load falls back to full unpickling for some payloads (sample inputs, pickled
    weights, opaque constants). Archives holding Python objects are refused, and every other
    torch.load inside is forced to the weights-only unpickler, which rejects code.
    """
    torch = _torch()
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, expected a .pt2 file from torch.export.save")
    _refuse_python_objects(path)
    saved = {k: os.environ.pop(k, None) for k in ("TORCH_FORCE_WEIGHTS_ONLY_LOAD",
                                                  "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")}
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.load(str(path))
    except Exception as exc:  # torch raises RuntimeError/UnpicklingError/zipfile errors
        raise ModelError(f"{path}: not a loadable ExportedProgram from torch.export.save "
                         f"({_first_line(exc)}); irc loads only tensors from a .pt2, never "
                         "pickled Python objects") from None
    finally:
        del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        os.environ.update({k: v for k, v in saved.items() if v is not None})


def _refuse_python_objects(path: Path) -> None:
    """Refuse archives whose constants are pickled Python/TorchScript objects."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"{path}: not a .pt2 archive from torch.export.save ({exc})") from None
    objects = [n for n in names if "/data/constants/" in f"/{n}" and
               n.rsplit("/", 1)[-1].startswith(("opaque_obj_", "custom_obj_"))]
    if objects:
        raise IrcError(f"{path}: holds pickled Python objects ({', '.join(objects[:3])}); loading "
                       "them would run code from the file. Export the model without custom "
                       "objects, or import its module spec 'pkg.module:factory'")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def forward_inputs(module) -> list[str]:
    """Names of the forward arguments a caller must pass."""
    params = inspect.signature(module.forward).parameters.values()
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        raise ModelError("forward(*args/**kwargs) cannot be exported by name: give forward named "
                         "arguments")
    return [p.name for p in params if p.default is p.empty]


def example_tensor(shape: tuple[int, ...], dtype: np.dtype, seed: int):
    """A seeded example input (small non-negative integers for index-like dtypes)."""
    torch = _torch()
    rng = np.random.default_rng(seed)
    if dtype.kind in "iu":
        array = rng.integers(0, 3, size=shape).astype(dtype)
    elif dtype.kind == "b":
        array = rng.random(shape) < 0.5
    else:
        array = rng.standard_normal(shape).astype(dtype)
    return torch.from_numpy(array)


def _example_inputs(names: list[str], options: ImportOptions, label: str) -> list:
    options.check_names(names)
    tensors = []
    for i, name in enumerate(names):
        spec = options.shape_for(name, i, len(names))
        if spec is None:
            raise ModelError(f"{label}: input {name!r} needs a shape: pass --input-shape "
                             f"{name}:D0,D1,... (forward takes {', '.join(names)})")
        shape = list(spec.shape)
        if shape and shape[0] is None:
            shape[0] = MIN_EXAMPLE_BATCH
        if any(d is None for d in shape):
            raise ModelError(f"--input-shape {name}: only the batch dim may be '?' for PyTorch")
        if options.dynamic_batch and shape and shape[0] < MIN_EXAMPLE_BATCH:
            shape[0] = MIN_EXAMPLE_BATCH
        tensors.append(example_tensor(tuple(shape), spec.np_dtype, options.seed + i))
    return tensors


def flatten_outputs(result: Any) -> list:
    """Tensors of a forward result, flattened in order (tuples, lists and dict values)."""
    if isinstance(result, dict):
        result = list(result.values())
    if isinstance(result, (list, tuple)):
        return [t for item in result for t in flatten_outputs(item)]
    return [result]


def output_names(count: int, result: Any = None) -> list[str]:
    """The keys of a dict (or namedtuple) of tensors, else output_0, output_1, ..."""
    if hasattr(result, "_fields"):
        result = result._asdict()
    if isinstance(result, dict) and len(result) == count and all(
            isinstance(k, str) and k for k in result):
        return list(result)
    return [f"output_{i}" for i in range(count)]


def _batch_dims(names: list[str]) -> tuple[dict[int, Any], ...]:
    """One shared symbolic batch for the first axis of every input (positional form)."""
    torch = _torch()
    batch = torch.export.Dim("batch")
    return tuple({0: batch} for _ in names)


def _export(model, args: tuple, names: list[str] | None, outputs: list[str], dynamic,
            options: ImportOptions, label: str):
    """torch.onnx.export with the dynamo exporter; its errors become one line naming the op."""
    torch = _torch()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, args, dynamo=True, dynamic_shapes=dynamic,
                                        opset_version=options.target_opset, input_names=names,
                                        output_names=outputs, verbose=False, optimize=True)
    except IrcError:
        raise
    except Exception as exc:  # torch.export/torch.onnx raise many error types
        raise _export_error(exc, label) from exc
    return program.model_proto


_OP_RE = re.compile(r"\b(?:aten|prims|torchvision|quantized)(?:::|\.)[A-Za-z_0-9]+(?:\.[A-Za-z_0-9]+)?")


def _export_error(exc: BaseException, label: str) -> IrcError:
    text = str(exc)
    ops = [f"{op}.{overload}" for op, overload in
           re.findall(r"OpOverload\(op='([\w.:]+)', overload='(\w+)'\)", text)]
    ops = sorted(set(ops or _OP_RE.findall(text)))
    if ops and ("No ONNX function" in text or "not supported" in text or "decomposition" in text):
        nodes = sorted(set(re.findall(r"translating node %(\w+)", text)))
        where = f" (node {', '.join(nodes)})" if nodes else ""
        return UnsupportedError(
            f"torch.onnx cannot express the PyTorch op {', '.join(ops)}{where} in ONNX while "
            f"exporting {label}; hint: rewrite that part with supported operations, or try another "
            "--opset")
    return ModelError(f"torch.onnx cannot export {label}: {type(exc).__name__}: {_first_line(exc)} "
                      "(--debug shows the full error)")


def _to_numpy(tensors: list) -> list[np.ndarray]:
    return [t.detach().cpu().numpy() for t in tensors]


def from_module(module, options: ImportOptions, label: str) -> Conversion:
    """An nn.Module: traced in eval mode on seeded inputs of the --input-shape shapes."""
    torch = _torch()
    module.eval()
    names = forward_inputs(module)
    args = _example_inputs(names, options, label)
    with torch.no_grad():
        sample = module(*args)
    outputs = output_names(len(flatten_outputs(sample)), sample)
    dynamic = _batch_dims(names) if options.dynamic_batch else None
    model = _export(module, tuple(args), names, outputs, dynamic, options, label)
    if options.dynamic_batch:
        _require_symbolic_batch(model, label)

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            result = module(*[torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names])
        return dict(zip(outputs, _to_numpy(flatten_outputs(result)), strict=True))

    return Conversion(model, reference, "pytorch")


def _require_symbolic_batch(model, label: str) -> None:
    """torch.onnx may fall back to a static export: a batch that came out fixed is an error."""
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].dim_param:
            raise ModelError(f"{label}: the model fixes the batch size of input {value.name!r} to "
                             f"{dims[0].dim_value} (torch.export specialized it), so --dynamic-batch "
                             "cannot apply; remove shape-dependent code on the batch axis")


def _static_batch(program) -> bool:
    """True when some user input of the ExportedProgram has a concrete first dimension."""
    torch = _torch()
    user_inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            val = node.meta.get("val")
            if val is not None and val.dim() > 0 and not isinstance(val.shape[0], torch.SymInt):
                return True
    return False


def from_exported(program, options: ImportOptions, label: str) -> Conversion:
    """An ExportedProgram with its own shapes (a fixed batch cannot be made dynamic afterwards)."""
    torch = _torch()
    if options.input_shapes:
        raise IrcError("--input-shape does not apply to an ExportedProgram: its shapes were fixed "
                       "by torch.export (export it with dynamic_shapes to change them)")
    args, kwargs = program.example_inputs or ((), {})
    if kwargs:
        raise ModelError(f"{label}: keyword inputs of an ExportedProgram are not supported")
    names = list(program.graph_signature.user_inputs)
    outputs = output_names(len(program.graph_signature.user_outputs))
    if options.dynamic_batch and _static_batch(program):
        # program.module() carries the shape guards of the export: it cannot be re-exported dynamic.
        raise IrcError(f"{label}: the ExportedProgram has a fixed batch size; export it with "
                       "dynamic_shapes={...: {0: torch.export.Dim('batch')}}, or import the module "
                       "spec with --dynamic-batch")
    runnable = program.module()
    model = _export(program, tuple(args), names, outputs, None, options, label)

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            result = runnable(*[torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names])
        return dict(zip(outputs, _to_numpy(flatten_outputs(result)), strict=True))

    return Conversion(model, reference, "pytorch")
