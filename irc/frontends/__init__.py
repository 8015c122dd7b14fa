"""Frontends: models from ONNX, TensorFlow/Keras and PyTorch into irc's IR.

``load(spec, **options)`` is the Python face of ``irc import``: it detects the
format, converts to ONNX (tf2onnx, torch.onnx, or the file as it is), checks
the result with ``onnx.checker``, loads it into the IR and, unless
``check=False``, compares the source framework with onnxruntime.

TensorFlow and PyTorch are imported only inside the converters, so importing
this package stays cheap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import IrcError, ModelError, UnsupportedError
from ..ir import Graph
from .options import DEFAULT_OPSET, ImportOptions, InputSpec, parse_input_shape
from .source import Conversion, Source, detect, detect_object, normalize_framework

__all__ = ["DEFAULT_OPSET", "ImportOptions", "ImportResult", "InputSpec", "Source", "detect",
           "raise_if_failed",
           "import_model", "load", "normalize_framework", "parse_input_shape"]


@dataclass
class ImportResult:
    """The imported graph with what was done to get it."""

    graph: Graph
    source: Source
    framework: str
    checks: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(report.ok for report in self.checks)


def load(spec: Any, **options: Any) -> Graph:
    """Import ``spec`` (a path, ``pkg.module:attr``, or a model object) and return the IR.

    Options mirror the CLI: framework, signature, input_shapes (["x:2,3,224,224"] or
    {"x": (2, 3, 224, 224)}), dynamic_batch, opset, check, atol, rtol. A failed
    conversion check raises IrcError.
    """
    result = import_model(spec, ImportOptions(**options))
    raise_if_failed(result)
    return result.graph


def raise_if_failed(result: ImportResult) -> None:
    """IrcError naming the outputs whose conversion check went over tolerance."""
    bad = [(r.batch, d) for r in result.checks for d in r.diffs if not d.ok]
    if bad:
        worst = ", ".join(f"{d.name} at batch {b}: max abs {d.max_abs:.3g}, max rel {d.max_rel:.3g}"
                          + (f" ({d.detail})" if d.detail else "") for b, d in bad)
        raise IrcError(f"conversion check failed: the ONNX model differs from {result.framework}: "
                       f"{worst} (loosen with --atol/--rtol, or skip with --no-check)")


def _converter(framework: str):
    if framework == "onnx":
        from . import onnx_file

        return onnx_file.convert
    if framework == "tensorflow":
        from . import tensorflow

        return tensorflow.convert
    from . import pytorch

    return pytorch.convert


def import_model(spec: Any, options: ImportOptions | None = None) -> ImportResult:
    """Detect, convert, validate, load into the IR and check against the source framework.

    ``spec`` is a path, a ``pkg.module:attr`` string, or (Python API only) the model object
    itself: an nn.Module, an ExportedProgram, a Keras model or a tf.function.
    """
    options = options or ImportOptions()
    # Quiet TensorFlow's C++ logging before a user's module (a Python spec) imports it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if isinstance(spec, (str, os.PathLike)):
        source = detect(str(spec), options.framework)
    else:
        source = detect_object(spec, options.framework)
    conversion = _converter(source.framework)(source, options)
    if conversion is None:  # an .onnx file taken as it is
        return _import_onnx_file(source)
    return _import_conversion(source, conversion, options)


def _import_onnx_file(source: Source) -> ImportResult:
    from ..inspect import check_model
    from ..ir.onnx_io import load as load_onnx

    graph = load_onnx(source.path)  # external data stays on disk until used
    check_model(source.path)
    return ImportResult(graph, source, "onnx")


def _import_conversion(source: Source, conversion: Conversion, options: ImportOptions) -> ImportResult:
    import onnx

    from ..ir import from_onnx, to_onnx
    from .check import check_conversion
    from .names import rename_io, reorder

    report_unsupported(conversion.model, conversion.framework)
    graph = from_onnx(conversion.model)
    rename_io(graph, conversion.renames)
    reorder(graph.inputs, conversion.input_order)
    reorder(graph.outputs, conversion.output_order)
    model = to_onnx(graph)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        tool = FRAMEWORK_TOOL.get(conversion.framework, (conversion.framework,))[0]
        raise ModelError(f"the model {tool} produced fails onnx.checker: {_first_line(exc)}; "
                         "try another --opset") from None
    result = ImportResult(graph, source, conversion.framework, notes=list(conversion.notes))
    if options.check and conversion.reference is not None:
        result.checks = check_conversion(model, graph, conversion.reference, options.check_batches,
                                         options.seed, options.atol, options.rtol)
    return result


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


FRAMEWORK_TOOL = {"tensorflow": ("tf2onnx", "TensorFlow"), "pytorch": ("torch.onnx", "PyTorch"),
                  "onnx": ("onnx.version_converter", "ONNX")}


def report_unsupported(model, framework: str) -> None:
    """Every node left in a framework's own op (not an ONNX op) is listed at once, with its name."""
    from onnx import defs

    local = {(f.domain, f.name) for f in model.functions}
    missing = []
    for node in _all_nodes(model.graph):
        domain = node.domain or ""
        if (domain, node.op_type) in local or domain not in ("", "ai.onnx"):
            continue
        if not defs.has(node.op_type, domain):
            missing.append(f"{node.op_type} (node {node.name!r})")
    if missing:
        tool, name = FRAMEWORK_TOOL.get(framework, (framework, framework))
        raise UnsupportedError(
            f"{tool} cannot express {len(missing)} {name} op(s) in ONNX: {', '.join(missing)}; "
            "hint: replace those layers with standard ops, or try a newer --opset")


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g.node:
                yield from _all_nodes(attr.g)
            for sub in attr.graphs:
                yield from _all_nodes(sub)
