"""Open Inference Protocol picture tensors, for both V2 front ends (REST and gRPC).

A digit model's second input, ``image`` (datatype ``BYTES``, shape ``[n]`` or ``[n, 1]``),
holds one encoded picture file per element: in the binary tensor data extension (and in
gRPC, whose ``bytes_contents`` the gRPC front end packs the same way) each element is a
4-byte little-endian length then the file's bytes (what tritonclient sends for a ``BYTES``
array); in JSON, whose strings cannot hold arbitrary bytes, each element is the
file in standard base64 (a ``data:image/png;base64,`` URL too), optionally said by the
input parameter ``content_type: "base64"`` as MLServer spells it. ``picture_request`` turns
that input into the model's numeric input (so ``DataPlane.infer`` validates it as any
tensor); the 28x28 images the model saw come back as output ``image`` (UINT8 [n, 28, 28])
when the request has ``parameters.return_image: true`` or asks for output ``image``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from model.interface import ModelInterface

from .core.errors import InvalidRequest
from .core.inference import NO_DATA, InferRequest, InferResponse, InputTensor, OutputTensor, flag
from .core.signature import PICTURE_INPUT, PICTURE_OUTPUT
from .pictures import Picture, as_uint8, picture_images

RETURN_IMAGE = "return_image"


@dataclass(slots=True)
class PictureOutput:
    """The images a picture request's model saw, and whether to send them as binary."""

    images: np.ndarray
    binary: bool


def _fail(index: int, field: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"input {PICTURE_INPUT.name!r}: {message}",
                          {"inputs": {str(index): {field: [message]}}})


def split_bytes(raw: bytes, count: int, index: int) -> list[bytes]:
    """``count`` elements of a BYTES tensor's binary data (4-byte LE length, then bytes)."""
    out: list[bytes] = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(raw):
            break
        (size,) = struct.unpack_from("<I", raw, offset)
        out.append(raw[offset + 4:offset + 4 + size])
        offset += 4 + size
    if len(out) != count or offset != len(raw):
        raise _fail(index, "parameters", f"the binary data must be {count} elements, each a "
                                         "4-byte little-endian length and that many bytes")
    return out


def _json_elements(data: Any, count: int, index: int) -> list[str]:
    """The base64 strings of a BYTES input's JSON ``data`` (flat or nested by one)."""
    if type(data) is list and data and all(type(d) is list for d in data):
        data = [e for d in data for e in d]
    if type(data) is not list or len(data) != count or \
            any(type(e) is not str for e in data):
        raise _fail(index, "data", f"Expected {count} strings, each a picture file in "
                                   "base64, as the shape says.")
    return data


def _picture_elements(tensor: InputTensor, index: int) -> list[Picture]:
    """The pictures of a BYTES input tensor, checked against its shape and parameters."""
    shape = list(tensor.shape)
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1) or shape[0] < 1:
        raise _fail(index, "shape", f"Shape {shape} does not fit: send [n] or [n, 1], one "
                                    "picture file per element.")
    params = dict(tensor.parameters or {})
    params.pop("binary_data_size", None)
    if set(params) - {"content_type"} or params.get("content_type", "base64") != "base64":
        raise _fail(index, "parameters", "Only binary_data_size and content_type "
                                         "'base64' are understood on a picture input.")
    if tensor.raw is not None:
        return [(b, None) for b in split_bytes(tensor.raw, shape[0], index)]
    if tensor.data is NO_DATA:
        raise _fail(index, "data", "Missing data: send base64 strings or binary data.")
    return list(_json_elements(tensor.data, shape[0], index))


def picture_request(iface: ModelInterface, req: InferRequest, max_pixels: int,
                    ) -> tuple[InferRequest, PictureOutput | None]:
    """(the request with its picture input as the model's FP32 input, the images to send
    back or None). Requests without a picture input are returned as they are."""
    params = dict(req.parameters or {})
    want = flag(params, RETURN_IMAGE, {})
    params.pop(RETURN_IMAGE, None)
    outputs = req.outputs
    binary = flag(params, "binary_data_output", {})
    if outputs is not None:
        asked = [o for o in outputs if o.name == PICTURE_OUTPUT.name]
        if asked:
            want = True
            binary = flag(asked[0].parameters or {}, "binary_data", {}) \
                if "binary_data" in (asked[0].parameters or {}) else binary
            outputs = [o for o in outputs if o.name != PICTURE_OUTPUT.name]
    at = [i for i, t in enumerate(req.inputs)
          if (t.name, t.datatype) == (PICTURE_INPUT.name, PICTURE_INPUT.datatype)]
    if not at:
        if want:
            raise InvalidRequest("the image output needs a picture input: send input "
                                 f"{PICTURE_INPUT.name!r} of datatype BYTES",
                                 {"parameters": {RETURN_IMAGE: ["Only with pictures."]}})
        return req, None
    index = at[0]
    pictures = _picture_elements(req.inputs[index], index)
    images = picture_images(iface, pictures, [("inputs", str(index), "data", str(i))
                                              for i in range(len(pictures))], max_pixels)
    numeric = InputTensor(iface.input_name, "FP32", [len(images), *images.shape[1:]],
                          raw=images.astype("<f4").tobytes())
    inputs = [numeric if i == index else t for i, t in enumerate(req.inputs)]
    new = replace(req, inputs=inputs, parameters=params or None, outputs=outputs)
    return new, PictureOutput(images, binary) if want else None


def with_picture_output(res: InferResponse, out: PictureOutput | None) -> InferResponse:
    """The response with output ``image`` appended when the client asked for it."""
    if out is None:
        return res
    return replace(res, outputs=[*res.outputs, OutputTensor(
        PICTURE_OUTPUT.name, PICTURE_OUTPUT.datatype, as_uint8(out.images), out.binary)])
