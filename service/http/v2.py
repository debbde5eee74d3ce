"""Open Inference Protocol (KServe V2) REST routes, with the binary tensor data extension:
the wire format to a typed ``InferRequest``, ``DataPlane.infer``, the ``InferResponse`` back.

JSON requests carry ``data`` in the body. With ``Inference-Header-Content-Length: L`` the
first L bytes are the JSON header and the rest are the inputs' raw little-endian bytes, in
input order, sized by each input's ``parameters.binary_data_size`` (what tritonclient sends
by default). Outputs come back as binary data when asked for (``binary_data_output`` or an
output's ``binary_data``), else as JSON. The protocol's rules live in ``core.inference``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import Blueprint, Response, request

from ..core import jsonio
from ..core.dataplane import DataPlane
from ..core.errors import InvalidRequest
from ..core.inference import NO_DATA, InferRequest, InferResponse, InputTensor, RequestedOutput
from ..core.schemas import InferenceRequest, load_envelope
from ..core.signature import SERVER_NAME, SERVER_VERSION
from ..picture_tensors import picture_request, with_picture_output
from .body import read_body
from .routing import addressed
from .v1 import json_response

EXTENSIONS = ["binary_tensor_data"]
HEADER_LENGTH = "Inference-Header-Content-Length"


def _split_body(body: bytes) -> tuple[bytes, bytes]:
    """(JSON header, binary tail) according to Inference-Header-Content-Length."""
    length = request.headers.get(HEADER_LENGTH)
    if length is None:
        return body, b""
    if not length.isdigit() or int(length) > len(body):
        raise InvalidRequest(f"{HEADER_LENGTH} must be the byte length of the JSON header "
                             f"(0..{len(body)}), got {length!r}",
                             {"headers": {HEADER_LENGTH: ["Invalid length."]}})
    return body[:int(length)], body[int(length):]


def _binary_chunks(inputs: list[dict[str, Any]], tail: bytes) -> list[bytes | None]:
    """Each input's slice of the binary tail (None for JSON data); sizes must add up."""
    chunks: list[bytes | None] = []
    offset = 0
    for i, tensor in enumerate(inputs):
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is None:
            chunks.append(None)
            continue
        where = {"inputs": {str(i): {"parameters": {"binary_data_size": ["Invalid size."]}}}}
        if type(size) is not int or size < 0 or offset + size > len(tail):
            raise InvalidRequest(f"input {tensor['name']!r}: binary_data_size {size!r} does "
                                 f"not fit the {len(tail)} bytes of binary data", where)
        if "data" in tensor:
            raise InvalidRequest(f"input {tensor['name']!r}: give data or binary_data_size, "
                                 "not both", {"inputs": {str(i): {"data": [
                                     "Unexpected field."]}}})
        chunks.append(tail[offset:offset + size])
        offset += size
    if offset != len(tail):
        raise InvalidRequest(f"the body has {len(tail) - offset} bytes of binary data that no "
                             "input's binary_data_size accounts for",
                             {"parameters": {"binary_data_size": ["Sizes do not add up."]}})
    return chunks


def read_request(schema: InferenceRequest) -> InferRequest:
    """The typed request of this HTTP request's body (JSON, or JSON header + binary data)."""
    body = read_body(binary_ok=HEADER_LENGTH in request.headers)
    header, tail = _split_body(body)
    obj = jsonio.loads(header)
    req = load_envelope(schema, obj)
    chunks = _binary_chunks(req["inputs"], tail)
    exact = jsonio.may_hold_booleans(header, {**obj, "inputs": [
        {k: v for k, v in t.items() if k != "data"} for t in obj["inputs"]]})
    inputs = [InputTensor(t["name"], t["datatype"], t["shape"], t.get("data", NO_DATA),
                          raw, t.get("parameters"), exact)
              for t, raw in zip(req["inputs"], chunks, strict=True)]
    outputs = req.get("outputs")
    return InferRequest(inputs, req.get("id"), req.get("model_name"), req.get("model_version"),
                        req.get("parameters"),
                        None if outputs is None else [
                            RequestedOutput(o["name"], o.get("parameters")) for o in outputs])


def write_response(res: InferResponse) -> Response:
    """The V2 answer: JSON, or a JSON header plus binary tensor data when asked for."""
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for out in res.outputs:
        arr = out.data
        tensor: dict[str, Any] = {"name": out.name, "datatype": out.datatype,
                                  "shape": list(arr.shape)}
        if out.binary:
            raw = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = arr.ravel()
        outputs.append(tensor)
    answer: dict[str, Any] = {"model_name": res.model_name, "model_version": res.model_version}
    if res.id is not None:
        answer["id"] = res.id
    answer["outputs"] = outputs
    header = jsonio.dumps(answer)
    if not chunks:
        return Response(header, mimetype="application/json")
    return Response(header + b"".join(chunks), mimetype="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(header))})


def make_blueprint(dataplane: DataPlane, max_image_pixels: int = 16_000_000) -> Blueprint:
    """The V2 routes over ``dataplane``; pictures above ``max_image_pixels`` are refused
    before decoding."""
    bp = Blueprint("v2", __name__)
    schema = InferenceRequest()

    @bp.get("/v2/health/live")
    def live() -> Response:
        return json_response({"live": dataplane.live()})

    @bp.get("/v2/health/ready")
    def ready() -> Response:
        dataplane.ready()
        return json_response({"ready": True})

    @bp.get("/v2")
    def server_metadata() -> Response:
        return json_response({"name": SERVER_NAME, "version": SERVER_VERSION,
                              "extensions": EXTENSIONS})

    @bp.get("/v2/models/<model:name>")
    @bp.get("/v2/models/<model:name>/versions/<version:version>")
    def metadata(name: str, version: str | None = None) -> Response:
        return json_response(dataplane.metadata(name, version))

    @bp.get("/v2/models/<model:name>/ready")
    @bp.get("/v2/models/<model:name>/versions/<version:version>/ready")
    def model_ready(name: str, version: str | None = None) -> Response:
        dataplane.version(name, version)
        return json_response({"name": name, "ready": True})

    @bp.post("/v2/models/<model:name>/infer")
    @bp.post("/v2/models/<model:name>/versions/<version:version>/infer")
    def infer(name: str, version: str | None = None) -> Response:
        mv, record = addressed(dataplane, name, version)
        req, pictures = picture_request(mv.interface, read_request(schema),  # type: ignore[arg-type]
                                        max_image_pixels)
        res = dataplane.infer(mv, req, versioned=version is not None)
        record.instances = req.inputs[0].shape[0]  # the batch size infer has checked
        return write_response(with_picture_output(res, pictures))

    return bp
