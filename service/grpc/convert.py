"""Protobuf messages of the protocol <-> the core's typed ``InferRequest`` / ``InferResponse``.

Typed ``contents`` become flat NumPy arrays and ``raw_input_contents`` stay bytes: both are
checked by ``core.tensors`` exactly as HTTP's JSON data and binary tensor data are. A
``BYTES`` input's ``contents.bytes_contents`` (one element each, e.g. a picture file) is
packed as its raw form, each element a 4-byte little-endian length then its bytes (what
tritonclient sends in ``raw_input_contents``), so both reach ``service.picture_tensors``
as the same binary data HTTP's binary extension gives. Outputs
go back as ``raw_output_contents`` (what Triton answers and tritonclient reads fastest)
unless the client asks for none of them as binary data (``binary_data_output: false``).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from ..core.errors import InvalidRequest
from ..core.inference import NO_DATA, InferRequest, InferResponse, InputTensor, RequestedOutput
from .proto import grpc_predict_v2_pb2 as pb

#: The ``InferTensorContents`` field of each datatype (FP16 has none: raw only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}
#: The NumPy dtype of each repeated field, so a decoded array keeps its wire type.
FIELD_DTYPE = {
    "int_contents": np.int32, "int64_contents": np.int64, "uint_contents": np.uint32,
    "uint64_contents": np.uint64, "fp32_contents": np.float32, "fp64_contents": np.float64,
}


def parameters(params: Any) -> dict[str, Any] | None:
    """A protobuf ``map<string, InferParameter>`` as plain values (None when empty)."""
    if not params:
        return None
    out = {}
    for key, value in params.items():
        which = value.WhichOneof("parameter_choice")
        out[key] = None if which is None else getattr(value, which)
    return out


def _bytes_contents(tensor: Any, index: int) -> bytes:
    """A BYTES input's ``contents.bytes_contents`` in raw form: per element, a 4-byte
    little-endian length then the bytes. InvalidRequest if the count disagrees with the
    shape or another contents field is used."""
    used = [f.name for f, _ in tensor.contents.ListFields()]
    if used != ["bytes_contents"]:
        raise InvalidRequest(
            f"invalid input {tensor.name!r}: BYTES data goes in contents.bytes_contents or "
            f"raw_input_contents, not {', '.join(f'contents.{u}' for u in used)}",
            {"inputs": {str(index): {"contents": ["Use contents.bytes_contents."]}}})
    elements = list(tensor.contents.bytes_contents)
    expected = math.prod(tensor.shape)
    if len(elements) != expected:
        message = (f"contents.bytes_contents has {len(elements)} elements; shape "
                   f"{list(tensor.shape)} needs {expected}.")
        raise InvalidRequest(f"invalid input {tensor.name!r}: {message}",
                             {"inputs": {str(index): {"contents": [message]}}})
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def _contents(tensor: Any, index: int) -> Any:
    """The typed contents of an input as a flat array, or NO_DATA if it has none."""
    contents = tensor.contents
    used = [f.name for f, _ in contents.ListFields()]
    if not used:
        return NO_DATA
    field = CONTENTS_FIELD.get(tensor.datatype)
    if field not in FIELD_DTYPE and tensor.datatype != "FP16":
        return NO_DATA  # BOOL, unknown: refused with HTTP's message by the core
    if used != [field]:
        want = f"contents.{field}" if field in FIELD_DTYPE else "raw_input_contents"
        raise InvalidRequest(
            f"invalid input {tensor.name!r}: {tensor.datatype} data goes in {want}, not "
            f"{', '.join(f'contents.{u}' for u in used)}",
            {"inputs": {str(index): {"contents": [f"Use {want}."]}}})
    return np.asarray(getattr(contents, field), dtype=FIELD_DTYPE[field])


def to_request(msg: Any) -> InferRequest:
    """The typed request of a ``ModelInferRequest``; InvalidRequest for a malformed one."""
    raw = list(msg.raw_input_contents)
    if raw and len(raw) != len(msg.inputs):
        raise InvalidRequest(
            f"raw_input_contents has {len(raw)} entries for {len(msg.inputs)} inputs; send "
            "one per input, in input order", {"raw_input_contents": ["One per input."]})
    inputs = []
    for i, t in enumerate(msg.inputs):
        if raw and t.HasField("contents"):
            raise InvalidRequest(
                f"input {t.name!r}: give contents or raw_input_contents, not both",
                {"inputs": {str(i): {"contents": ["Unexpected field."]}}})
        if not raw and t.datatype == "BYTES" and t.contents.ListFields():
            data, packed = NO_DATA, _bytes_contents(t, i)
        else:
            data = NO_DATA if raw else _contents(t, i)
            packed = raw[i] if raw else None
        inputs.append(InputTensor(t.name, t.datatype, list(t.shape), data, packed,
                                  parameters(t.parameters)))
    params = parameters(msg.parameters) or {}
    # gRPC answers in raw_output_contents unless told otherwise (as Triton does).
    params.setdefault("binary_data_output", True)
    outputs = [RequestedOutput(o.name, parameters(o.parameters)) for o in msg.outputs]
    return InferRequest(inputs, msg.id or None, msg.model_name or None,
                        msg.model_version or None, params, outputs or None)


def to_message(res: InferResponse) -> Any:
    """The ``ModelInferResponse`` of a typed response: raw contents if any output is binary."""
    raw = any(out.binary for out in res.outputs)
    msg = pb.ModelInferResponse(model_name=res.model_name, model_version=res.model_version,
                                id=res.id or "")
    for out in res.outputs:
        arr = out.data
        tensor = msg.outputs.add(name=out.name, datatype=out.datatype, shape=arr.shape)
        if raw:
            msg.raw_output_contents.append(
                np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes())
        else:
            getattr(tensor.contents, CONTENTS_FIELD[out.datatype]).extend(arr.ravel().tolist())
    return msg
