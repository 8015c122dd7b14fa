"""irc's intermediate representation: a networkx dataflow graph that round-trips ONNX."""

from .graph import CAPTURE, Attr, Dim, Graph, ModelInfo, Op, Value
from .onnx_io import from_onnx, load, save, to_onnx
from .tensor import Tensor

__all__ = ["CAPTURE", "Attr", "Dim", "Graph", "ModelInfo", "Op", "Tensor", "Value",
           "from_onnx", "load", "save", "to_onnx"]
