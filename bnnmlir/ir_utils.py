"""Small helpers between numpy and xDSL attributes/types."""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import (
    BytesAttr,
    DenseIntOrFPElementsAttr,
    Float32Type,
    Float64Type,
    IntegerType,
    MemRefType,
    TensorType,
    f32,
    f64,
    i1,
    i8,
    i16,
    i32,
    i64,
)
from xdsl.ir import Attribute, SSAValue

_NUMPY_OF_WIDTH = {1: np.bool_, 8: np.int8, 16: np.int16, 32: np.int32, 64: np.int64}


def numpy_dtype(element_type: Attribute) -> np.dtype:
    """The numpy dtype that stores an MLIR element type (signless ints as signed)."""
    if isinstance(element_type, IntegerType):
        return np.dtype(_NUMPY_OF_WIDTH[element_type.width.data])
    if isinstance(element_type, Float32Type):
        return np.dtype(np.float32)
    if isinstance(element_type, Float64Type):
        return np.dtype(np.float64)
    raise ValueError(f"no numpy dtype for element type {element_type}")


def value_shape(value: SSAValue) -> tuple[int, ...]:
    """The shape of a tensor or memref value."""
    t = value.type
    assert isinstance(t, TensorType | MemRefType)
    return tuple(t.get_shape())


def value_elem(value: SSAValue) -> Attribute:
    """The element type of a tensor or memref value; the type itself for a scalar value."""
    t = value.type
    if isinstance(t, TensorType | MemRefType):
        return t.get_element_type()
    return t


def mlir_element_type(dtype: np.dtype | type) -> Attribute:
    """The MLIR element type of a numpy dtype (unsigned ints map to signless of the same width)."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return f32
    if dtype == np.float64:
        return f64
    if dtype == np.bool_:
        return i1
    if dtype.kind in "iu":
        return {1: i8, 2: i16, 4: i32, 8: i64}[dtype.itemsize]
    raise ValueError(f"no MLIR element type for numpy dtype {dtype}")


def dense_to_numpy(attr: DenseIntOrFPElementsAttr) -> np.ndarray:
    """The values of a dense elements attribute as a numpy array of its shape (splats expanded)."""
    dtype = numpy_dtype(attr.get_element_type())
    shape = attr.get_shape()
    flat = np.frombuffer(attr.data.data, dtype=dtype.newbyteorder("<")).astype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    if flat.size == 1 and count != 1:
        flat = np.full(count, flat[0], dtype=dtype)
    return flat.reshape(shape)


def numpy_to_dense(values: np.ndarray, as_type: TensorType | MemRefType | None = None) -> DenseIntOrFPElementsAttr:
    """A dense elements attribute holding ``values`` (type inferred from the array if not given)."""
    values = np.asarray(values)
    if as_type is None:
        as_type = TensorType(mlir_element_type(values.dtype), values.shape)
    dtype = numpy_dtype(as_type.get_element_type()).newbyteorder("<")
    data = np.ascontiguousarray(values.astype(dtype, copy=False)).tobytes()
    return DenseIntOrFPElementsAttr(as_type, BytesAttr(data))


def static_memref(t: Attribute) -> MemRefType:
    """``t`` if it is a memref of static shape and identity layout, else ``ValueError``."""
    from xdsl.dialects.builtin import NoneAttr

    if not isinstance(t, MemRefType) or any(d < 0 for d in t.get_shape()):
        raise ValueError(f"expected a statically shaped memref, got {t}")
    if not isinstance(t.layout, NoneAttr):
        raise ValueError(f"expected an identity-layout memref, got {t}")
    return t


def byte_size(t: TensorType | MemRefType) -> int:
    """Storage size in bytes of a statically shaped tensor or memref."""
    count = int(np.prod(t.get_shape(), dtype=np.int64))
    return count * numpy_dtype(t.get_element_type()).itemsize
