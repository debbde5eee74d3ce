"""Open Inference Protocol (KServe V2) routes, with the binary tensor data extension.

JSON requests carry ``data`` in the body. With ``Inference-Header-Content-Length: L`` the
first L bytes are the JSON header and the rest are the inputs' raw little-endian bytes, in
input order, sized by each input's ``parameters.binary_data_size`` (what tritonclient sends
by default). Outputs come back as binary data when asked for (``binary_data_output`` or an
output's ``binary_data``), else as JSON. Any other parameter is rejected, not ignored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import Blueprint, Response, request

from . import codec
from .dataplane import DataPlane, Prediction
from .errors import InvalidRequest
from .registry import ModelVersion
from .schemas import InferenceRequest
from .v1 import json_response
from .wire import read_body

SERVER_NAME = "numpy-model-server"
SERVER_VERSION = "0.1.0"
PLATFORM = "numpy-model-server"
EXTENSIONS = ["binary_tensor_data"]
HEADER_LENGTH = "Inference-Header-Content-Length"

#: Parameters this server acts on; anything else is a 400, never silently dropped.
REQUEST_PARAMETERS = {"binary_data_output"}
INPUT_PARAMETERS = {"binary_data_size", "content_type"}
OUTPUT_PARAMETERS = {"binary_data"}


def model_metadata(mv: ModelVersion, versions: list[int]) -> dict[str, Any]:
    sig = mv.signature
    return {"name": mv.name, "versions": [str(v) for v in versions], "platform": PLATFORM,
            "inputs": [t.as_dict() for t in sig.inputs],
            "outputs": [t.as_dict() for t in sig.outputs], "parameters": sig.parameters()}


def _unsupported(params: dict[str, Any], allowed: set[str], where: dict[str, Any],
                 what: str) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        message = (f"Unsupported parameter {unknown[0]!r}; this server supports "
                   f"{', '.join(sorted(allowed))}.")
        raise InvalidRequest(f"{what}: {message}", _nest(where, {"parameters": {
            k: ["Unsupported parameter."] for k in unknown}}))


def _nest(path: dict[str, Any], leaf: dict[str, Any]) -> dict[str, Any]:
    """{"inputs": {"0": leaf}} from path {"inputs": "0"} (or leaf itself for {})."""
    out = leaf
    for key, index in reversed(list(path.items())):
        out = {key: {index: out}}
    return out


def _flag(params: dict[str, Any], name: str, where: dict[str, Any]) -> bool:
    value = params.get(name, False)
    if type(value) is not bool:
        raise InvalidRequest(f"parameter {name} must be true or false",
                             _nest(where, {"parameters": {name: ["Not a valid boolean."]}}))
    return value


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


def _binary_inputs(req: dict[str, Any], tail: bytes) -> list[bytes | None]:
    """Each input's slice of the binary tail (None for JSON data); sizes must add up."""
    chunks: list[bytes | None] = []
    offset = 0
    for i, tensor in enumerate(req["inputs"]):
        params = tensor.get("parameters") or {}
        where = {"inputs": str(i)}
        _unsupported(params, INPUT_PARAMETERS, where, f"input {tensor['name']!r}")
        if params.get("content_type", "np") != "np":
            raise InvalidRequest(
                f"input {tensor['name']!r}: content_type {params['content_type']!r} is not "
                "supported; tensors are numeric arrays ('np')",
                _nest(where, {"parameters": {"content_type": ["Must be one of: np."]}}))
        size = params.get("binary_data_size")
        if size is None:
            chunks.append(None)
            continue
        if type(size) is not int or size < 0 or offset + size > len(tail):
            raise InvalidRequest(f"input {tensor['name']!r}: binary_data_size {size!r} does "
                                 f"not fit the {len(tail)} bytes of binary data",
                                 _nest(where, {"parameters": {"binary_data_size": [
                                     "Invalid size."]}}))
        if "data" in tensor:
            raise InvalidRequest(f"input {tensor['name']!r}: give data or binary_data_size, "
                                 "not both", _nest(where, {"data": ["Unexpected field."]}))
        chunks.append(tail[offset:offset + size])
        offset += size
    if offset != len(tail):
        raise InvalidRequest(f"the body has {len(tail) - offset} bytes of binary data that no "
                             "input's binary_data_size accounts for",
                             {"parameters": {"binary_data_size": ["Sizes do not add up."]}})
    return chunks


def check_addressed(mv: ModelVersion, req: dict[str, Any], versioned: bool) -> None:
    """400 unless the body's optional ``model_name`` / ``model_version`` (KServe's SDK sends
    them) name the model and version that serves this URL: a contradiction is never
    silently answered by another model. An empty ``model_version`` means "not named", as
    in the protocol's gRPC messages."""
    route = (f"/v2/models/{mv.name}/versions/{mv.version}/infer" if versioned
             else f"/v2/models/{mv.name}/infer")
    name = req.get("model_name")
    if name is not None and name != mv.name:
        raise InvalidRequest(
            f"the request names model_name {name!r} but was sent to {route}; send it to "
            f"/v2/models/{name}/infer or leave model_name out",
            {"model_name": [f"Must be {mv.name!r}, the model of the URL."]})
    version = req.get("model_version")
    if version and version != str(mv.version):
        where = "this URL serves" if versioned else "the URL names no version; it serves"
        raise InvalidRequest(
            f"the request names model_version {version!r} but {where} version {mv.version} "
            f"of {mv.name!r}; send it to /v2/models/{mv.name}/versions/{version}/infer or "
            "leave model_version out",
            {"model_version": [f"Must be {str(mv.version)!r}, the version of the URL."]})


def requested_outputs(mv: ModelVersion, req: dict[str, Any]) -> list[tuple[str, bool]]:
    """[(output name, as binary data)] the answer must carry; 400 for anything unknown.

    Checked before predicting, so a bad request costs no forward pass.
    """
    params = req.get("parameters") or {}
    binary_default = _flag(params, "binary_data_output", {})
    available = mv.signature.output_names
    wanted = req.get("outputs")
    if wanted is None:
        return [(name, binary_default) for name in available]
    plan = []
    for i, out in enumerate(wanted):
        where = {"outputs": str(i)}
        if out["name"] not in available:
            raise InvalidRequest(f"unknown output {out['name']!r}; this model returns "
                                 f"{', '.join(available)}", _nest(where, {"name": [
                                     f"Must be one of: {', '.join(available)}."]}))
        oparams = out.get("parameters") or {}
        _unsupported(oparams, OUTPUT_PARAMETERS, where, f"output {out['name']!r}")
        binary = _flag(oparams, "binary_data", where) if "binary_data" in oparams \
            else binary_default
        plan.append((out["name"], binary))
    return plan


def _output_arrays(mv: ModelVersion, pred: Prediction) -> dict[str, tuple[str, np.ndarray]]:
    """{name: (datatype, array)} of everything the model returns."""
    if pred.values is not None:
        return {mv.signature.output_name: ("FP32", pred.values)}
    return {"probabilities": ("FP32", pred.probabilities), "label": ("INT64", pred.labels)}


def infer_response(mv: ModelVersion, req: dict[str, Any], plan: list[tuple[str, bool]],
                   pred: Prediction) -> Response:
    """The V2 answer: JSON, or a JSON header plus binary tensor data when asked for."""
    arrays = _output_arrays(mv, pred)
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, binary in plan:
        datatype, arr = arrays[name]
        tensor: dict[str, Any] = {"name": name, "datatype": datatype,
                                  "shape": list(arr.shape)}
        if binary:
            raw = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = arr.ravel()
        outputs.append(tensor)
    answer: dict[str, Any] = {"model_name": mv.name, "model_version": str(mv.version)}
    if "id" in req:
        answer["id"] = req["id"]
    answer["outputs"] = outputs
    header = codec.dumps(answer)
    if not chunks:
        return Response(header, mimetype="application/json")
    return Response(header + b"".join(chunks), mimetype="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(header))})


def make_blueprint(dataplane: DataPlane, max_instances: int) -> Blueprint:
    """The V2 routes over ``dataplane``."""
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
        model = dataplane.model(name)
        mv = dataplane.version(name, version)
        return json_response(model_metadata(mv, [v for v, m in model.versions.items()
                                                 if m.ready]))

    @bp.get("/v2/models/<model:name>/ready")
    @bp.get("/v2/models/<model:name>/versions/<version:version>/ready")
    def model_ready(name: str, version: str | None = None) -> Response:
        dataplane.version(name, version)
        return json_response({"name": name, "ready": True})

    @bp.post("/v2/models/<model:name>/infer")
    @bp.post("/v2/models/<model:name>/versions/<version:version>/infer")
    def infer(name: str, version: str | None = None) -> Response:
        mv = dataplane.version(name, version)
        labels = request.environ["service.labels"]
        labels[0], labels[1] = name, str(mv.version)
        body = read_body(binary_ok=HEADER_LENGTH in request.headers)
        header, tail = _split_body(body)
        obj = codec.loads(header)
        req = codec.load_envelope(schema, obj)
        check_addressed(mv, req, version is not None)
        _unsupported(req.get("parameters") or {}, REQUEST_PARAMETERS, {}, "request")
        chunks = _binary_inputs(req, tail)
        if len(req["inputs"]) != 1:
            raise InvalidRequest(
                f"this model takes exactly one input, {mv.signature.input_name!r}; got "
                f"{len(req['inputs'])}", {"inputs": ["Expected one input."]})
        plan = requested_outputs(mv, req)
        check = codec.may_hold_booleans(header, {**obj, "inputs": [
            {k: v for k, v in t.items() if k != "data"} for t in obj["inputs"]]})
        x = codec.tensor_to_batch(mv.signature, req["inputs"][0], 0, chunks[0], check,
                                  max_instances)
        labels[2] = len(x)
        return infer_response(mv, req, plan, dataplane.predict(mv, x))

    return bp
