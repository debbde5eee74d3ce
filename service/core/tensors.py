"""One Open Inference Protocol input tensor (JSON ``data`` or binary bytes) to a checked NumPy
batch: name, datatype, shape, size and integer range first, then ``values.checked``."""

from __future__ import annotations

from typing import Any

import numpy as np

from model.interface import ModelInterface

from .errors import InvalidRequest
from .inference import NO_DATA, InputTensor
from .instances import not_a_number
from .jsonio import json_type
from .values import MAX_DETAILED, checked

#: V2 datatypes this service converts, and their NumPy dtypes (little-endian for binary data).
NUMERIC_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(code).newbyteorder("<") for name, code in [
        ("UINT8", "u1"), ("UINT16", "u2"), ("UINT32", "u4"), ("UINT64", "u8"),
        ("INT8", "i1"), ("INT16", "i2"), ("INT32", "i4"), ("INT64", "i8"),
        ("FP16", "f2"), ("FP32", "f4"), ("FP64", "f8")]
}


def tensor_to_batch(iface: ModelInterface, tensor: InputTensor, index: int,
                    max_instances: int) -> np.ndarray:
    """Checked float32 batch (n, *input_shape) from input ``index`` of a request."""
    def fail(field: str, message: str) -> InvalidRequest:
        return InvalidRequest(f"invalid input {tensor.name!r}: {message}",
                              {"inputs": {str(index): {field: [message]}}})

    if tensor.name != iface.input_name:
        raise fail("name", f"Unknown input {tensor.name!r}; this model takes one input "
                           f"named {iface.input_name!r}.")
    dtype = NUMERIC_DTYPES.get(tensor.datatype)
    if dtype is None:
        raise fail("datatype", f"Datatype {tensor.datatype} is not supported; send "
                               "FP32, FP64, FP16, INT8-64 or UINT8-64 numbers.")
    shape = tuple(tensor.shape)
    if shape[1:] != iface.input_shape and shape[1:] != (iface.input_size,):
        want = [-1, *iface.input_shape]
        raise fail("shape", f"Shape {list(shape)} does not fit this model: it takes "
                            f"{want}" + (f" or [-1, {iface.input_size}]"
                                         if len(iface.input_shape) > 1 else "") + ".")
    n = shape[0]
    if n == 0:
        raise fail("shape", "No instances: the batch dimension is 0.")
    if n > max_instances:
        raise fail("shape", f"Too many instances: {n} is more than the limit of "
                            f"{max_instances} (SERVICE_MAX_INSTANCES); split the batch.")
    count = int(np.prod(shape))
    raw = tensor.raw
    if raw is not None:
        if len(raw) != count * dtype.itemsize:
            raise fail("parameters", f"binary data is {len(raw)} bytes; shape "
                                     f"{list(shape)} of {tensor.datatype} needs "
                                     f"{count * dtype.itemsize}.")
        arr = np.frombuffer(raw, dtype=dtype)
    else:
        if tensor.data is NO_DATA:
            raise fail("data", "Missing data for required field (or send it as binary data "
                               "with parameters.binary_data_size).")
        data = tensor.data
        arr = _tensor_data(data, tensor.exact)
        if arr is None:
            errors = _data_errors(data)
            if errors:
                raise InvalidRequest(f"invalid input {tensor.name!r}: data must hold "
                                     "only numbers in regular nested lists",
                                     {"inputs": {str(index): {"data": errors}}})
            arr = _tensor_data(data, False)
        if arr is None or arr.size != count:
            got = "ragged lists" if arr is None else f"{arr.size} values"
            raise fail("data", f"Data has {got}; shape {list(shape)} needs {count} values.")
        if dtype.kind in "iu":
            if arr.dtype.kind == "f":
                raise fail("data", f"Datatype {tensor.datatype} needs integers; the data "
                                   "has non-integer numbers (declare FP32 or FP64).")
            info = np.iinfo(dtype)
            if arr.size and (arr.min() < info.min or arr.max() > info.max):
                raise fail("data", f"Data values do not fit {tensor.datatype} "
                                   f"([{info.min}, {info.max}]).")
        elif dtype != np.float64:
            with np.errstate(over="ignore"):
                arr = arr.astype(dtype)  # overflow -> inf, reported by the value check
    return checked(iface, arr.reshape(shape), ("inputs", str(index), "data"))


def _tensor_data(data: Any, check_booleans: bool) -> np.ndarray | None:
    """``data`` as a numeric array, or None if it holds anything but numbers (or may).
    A NumPy array is typed contents a binary front end (gRPC) decoded already."""
    if isinstance(data, np.ndarray):
        return data if data.dtype.kind in "iuf" else None
    if check_booleans or type(data) is not list:
        return None
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError):
        return None
    return arr if arr.dtype.kind in "iuf" else None


def _data_errors(data: Any) -> Any:
    """Slow path: positions of non-numbers in nested ``data`` (first MAX_DETAILED)."""
    if type(data) is not list:
        return [f"Not a valid list; got {json_type(data)}."]
    errors: dict[str, Any] = {}
    depth = None
    for j, v in enumerate(data):
        if type(v) is list:
            sub = _data_errors(v)
            if depth == "number":
                sub = ["Expected a number here (ragged nesting)."]
            depth = "list"
        else:
            sub = [not_a_number(v)] if type(v) is not int and type(v) is not float else None
            if depth == "list" and sub is None:
                sub = ["Expected a list here (ragged nesting)."]
            depth = "number"
        if sub:
            errors[str(j)] = sub
            if len(errors) >= MAX_DETAILED:
                break
    return errors or None
