"""Constant tensor data: lazily decoded from an ONNX TensorProto, or held as numpy.

A model's weights stay in their protobuf (or external file) until a pass asks for
numbers, so loading and saving a model that no pass touched costs no decoding and
writes back the very same bytes.
"""

from __future__ import annotations

import os

import numpy as np
from onnx import TensorProto, helper, numpy_helper

# Element types whose size is not a whole number of bytes (packed 4-bit types).
_PACKED_4BIT = {
    getattr(TensorProto, n)
    for n in ("INT4", "UINT4", "FLOAT4E2M1")
    if hasattr(TensorProto, n)
}


def elem_size_bits(elem_type: int) -> int:
    """Bits one element of an ONNX element type occupies in raw data."""
    if elem_type in _PACKED_4BIT:
        return 4
    if elem_type == TensorProto.STRING:
        return 0
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize * 8


class Tensor:
    """Immutable constant data with a known element type and shape."""

    __slots__ = ("_proto", "_array", "_base_dir", "elem_type", "dims")

    def __init__(
        self,
        *,
        proto: TensorProto | None = None,
        array: np.ndarray | None = None,
        base_dir: str | os.PathLike | None = None,
        elem_type: int | None = None,
    ):
        if (proto is None) == (array is None):
            raise ValueError("Tensor needs exactly one of proto or array")
        self._proto = proto
        self._array = None
        self._base_dir = str(base_dir) if base_dir is not None else None
        if proto is not None:
            self.elem_type = proto.data_type
            self.dims = tuple(int(d) for d in proto.dims)
        else:
            array = np.asarray(array)
            self._array = array
            self.elem_type = elem_type if elem_type is not None else _np_to_elem_type(array.dtype)
            self.dims = tuple(int(d) for d in array.shape)

    @classmethod
    def from_array(cls, array: np.ndarray, elem_type: int | None = None) -> Tensor:
        return cls(array=np.asarray(array, order="C"), elem_type=elem_type)  # keeps 0-d arrays 0-d

    @property
    def is_external(self) -> bool:
        return self._proto is not None and self._proto.data_location == TensorProto.EXTERNAL

    @property
    def size(self) -> int:
        return int(np.prod(self.dims, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes of the raw data, computed from type and shape without loading it."""
        if self.elem_type == TensorProto.STRING:
            return int(sum(len(s) for s in self.numpy().ravel()))
        return (self.size * elem_size_bits(self.elem_type) + 7) // 8

    def numpy(self) -> np.ndarray:
        """The data as numpy (bfloat16/float8 through ml_dtypes); decoded once."""
        if self._array is None:
            self._array = numpy_helper.to_array(self._proto, base_dir=self._base_dir or "")
        return self._array

    def to_proto(self, name: str) -> TensorProto:
        """A TensorProto holding the data inline (external data is read in)."""
        if self._proto is not None and not self.is_external:
            proto = TensorProto()
            proto.CopyFrom(self._proto)
            if proto.name != name:
                proto.name = name
            return proto
        if self._proto is not None:
            proto = TensorProto()
            proto.CopyFrom(self._proto)
            del proto.external_data[:]
            proto.data_location = TensorProto.DEFAULT
            proto.raw_data = self.raw_bytes()
            if proto.name != name:
                proto.name = name
            return proto
        return _array_to_proto(self._array, self.elem_type, name)

    def raw_bytes(self) -> bytes:
        """Little-endian raw data as ONNX stores it (not for strings)."""
        if self.is_external:
            info = {e.key: e.value for e in self._proto.external_data}
            path = os.path.join(self._base_dir or "", info["location"])
            offset, length = int(info.get("offset", 0)), info.get("length")
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read(int(length) if length is not None else -1)
        if self._proto is not None and self._proto.HasField("raw_data"):
            return self._proto.raw_data
        return _array_to_proto(self.numpy(), self.elem_type, "").raw_data

    def proto_template(self) -> TensorProto | None:
        """The original proto (for doc_string/metadata), if the tensor came from one."""
        return self._proto


def _np_to_elem_type(dtype: np.dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _array_to_proto(array: np.ndarray, elem_type: int, name: str) -> TensorProto:
    if elem_type == TensorProto.STRING:
        array = array.astype(object)
    proto = numpy_helper.from_array(np.asarray(array, order="C"), name)
    if proto.data_type != elem_type:
        raise ValueError(f"tensor {name!r}: numpy dtype {array.dtype} does not match ONNX type {elem_type}")
    return proto


__all__ = ["Tensor", "elem_size_bits"]
