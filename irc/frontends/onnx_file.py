"""ONNX files: read as they are (external data included), or moved to another opset on request."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import ModelProto

from ..errors import IrcError, ModelError
from .options import ImportOptions
from .source import Conversion, Source


def default_opset(model: ModelProto) -> int | None:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return None


def read_model(path: Path) -> ModelProto:
    """The whole model with its external data loaded."""
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, expected an .onnx file")
    try:
        return onnx.load(str(path), load_external_data=True)
    except Exception as exc:  # onnx raises DecodeError, OSError or its own errors
        raise ModelError(f"{path}: cannot read as ONNX ({str(exc).splitlines()[0]})") from None


def convert_opset(model: ModelProto, opset: int) -> ModelProto:
    """onnx.version_converter, with its failures turned into one line."""
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, opset)
    except Exception as exc:  # the converter raises RuntimeError/ConvertError with C++ text
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IrcError(f"onnx.version_converter cannot move the model from opset "
                       f"{default_opset(model)} to {opset}: {first}") from None


def convert(source: Source, options: ImportOptions) -> Conversion | None:
    """None when the file is taken as it is (the caller loads it lazily); else the converted model.

    The reference for the conversion check is onnxruntime on the original model.
    """
    if options.input_shapes or options.dynamic_batch:
        raise IrcError("--input-shape and --dynamic-batch apply to TensorFlow and PyTorch models; "
                       "an .onnx file keeps its own input shapes")
    if options.opset is None:
        return None
    from ..inspect import check_model
    from ..ir.onnx_io import load as load_onnx

    load_onnx(source.path)  # the same one-line errors as every other command for a bad file
    check_model(source.path)
    original = read_model(source.path)
    if default_opset(original) == options.opset:
        return None
    converted = convert_opset(original, options.opset)

    def reference(feeds):
        from .. import oracle

        return oracle.run(original, feeds)

    return Conversion(converted, reference, "onnx",
                      [f"opset {default_opset(original)} -> {options.opset}"])
