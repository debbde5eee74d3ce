"""The Open Inference Protocol's request and response as plain typed objects, and its rules:
which parameters this server acts on, which outputs a request asks for, whether the body's
``model_name`` / ``model_version`` agree with the model addressed.

Any front end (REST today, gRPC next) builds an ``InferRequest`` from its wire format and
writes the ``InferResponse`` back; ``DataPlane.infer`` does everything in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from model.interface import ModelInterface

from .errors import InvalidRequest

#: Parameters this server acts on; anything else is a 400, never silently dropped.
REQUEST_PARAMETERS = frozenset({"binary_data_output"})
INPUT_PARAMETERS = frozenset({"binary_data_size", "content_type"})
OUTPUT_PARAMETERS = frozenset({"binary_data"})


class _NoData:
    """The type of ``NO_DATA``: an input sent without ``data`` (JSON ``null`` is data)."""

    def __repr__(self) -> str:
        return "NO_DATA"


NO_DATA: Any = _NoData()


@dataclass(slots=True)
class InputTensor:
    """One input: ``data`` nested lists of numbers, a flat NumPy array (typed contents) or
    NO_DATA, or ``raw`` little-endian bytes (binary tensor data). ``exact`` asks for the
    value-by-value check because the data may hide booleans (JSON) that a bulk conversion
    would turn into numbers."""

    name: str
    datatype: str
    shape: list[int]
    data: Any = NO_DATA
    raw: bytes | None = None
    parameters: dict[str, Any] | None = None
    exact: bool = False


@dataclass(slots=True)
class RequestedOutput:
    """An output the client asks for, with its parameters (``binary_data``)."""

    name: str
    parameters: dict[str, Any] | None = None


@dataclass(slots=True)
class InferRequest:
    """An inference request as the Open Inference Protocol defines it."""

    inputs: list[InputTensor]
    id: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestedOutput] | None = None


@dataclass(slots=True)
class OutputTensor:
    """One output: its array (C-contiguous) and whether to send it as binary data."""

    name: str
    datatype: str
    data: np.ndarray
    binary: bool = False


@dataclass(slots=True)
class InferResponse:
    """The answer: who answered, the request's id, the outputs asked for."""

    model_name: str
    model_version: str
    id: str | None
    outputs: list[OutputTensor]


# -- rules -----------------------------------------------------------------------------------
def nest(path: dict[str, Any], leaf: dict[str, Any]) -> dict[str, Any]:
    """{"inputs": {"0": leaf}} from path {"inputs": "0"} (or leaf itself for {})."""
    out = leaf
    for key, index in reversed(list(path.items())):
        out = {key: {index: out}}
    return out


def check_parameters(params: dict[str, Any] | None, allowed: frozenset[str],
                     where: dict[str, Any], what: str) -> None:
    """InvalidRequest naming the first parameter of ``params`` not in ``allowed``."""
    if not params:
        return
    unknown = sorted(set(params or ()) - allowed)
    if unknown:
        message = (f"Unsupported parameter {unknown[0]!r}; this server supports "
                   f"{', '.join(sorted(allowed))}.")
        raise InvalidRequest(f"{what}: {message}", nest(where, {"parameters": {
            k: ["Unsupported parameter."] for k in unknown}}))


def flag(params: dict[str, Any], name: str, where: dict[str, Any]) -> bool:
    """A boolean parameter (false when absent); InvalidRequest if it is not a boolean."""
    value = params.get(name, False)
    if value is not True and value is not False:
        raise InvalidRequest(f"parameter {name} must be true or false",
                             nest(where, {"parameters": {name: ["Not a valid boolean."]}}))
    return value


def check_input_parameters(tensor: InputTensor, index: int) -> None:
    """Only ``binary_data_size`` and ``content_type: "np"`` are understood on an input."""
    where = {"inputs": str(index)}
    params = tensor.parameters or {}
    check_parameters(params, INPUT_PARAMETERS, where, f"input {tensor.name!r}")
    if params.get("content_type", "np") != "np":
        raise InvalidRequest(
            f"input {tensor.name!r}: content_type {params['content_type']!r} is not "
            "supported; tensors are numeric arrays ('np')",
            nest(where, {"parameters": {"content_type": ["Must be one of: np."]}}))


def check_addressed(name: str, version: int, req: InferRequest, versioned: bool) -> None:
    """InvalidRequest unless the body's optional ``model_name`` / ``model_version`` (KServe's
    SDK sends them) name the model and version that serves the request: a contradiction
    is never silently answered by another model. An empty ``model_version`` means "not
    named", as in the protocol's gRPC messages."""
    route = (f"/v2/models/{name}/versions/{version}/infer" if versioned
             else f"/v2/models/{name}/infer")
    if req.model_name is not None and req.model_name != name:
        raise InvalidRequest(
            f"the request names model_name {req.model_name!r} but was sent to {route}; send "
            f"it to /v2/models/{req.model_name}/infer or leave model_name out",
            {"model_name": [f"Must be {name!r}, the model of the URL."]})
    if req.model_version and req.model_version != str(version):
        where = "this URL serves" if versioned else "the URL names no version; it serves"
        raise InvalidRequest(
            f"the request names model_version {req.model_version!r} but {where} version "
            f"{version} of {name!r}; send it to /v2/models/{name}/versions/"
            f"{req.model_version}/infer or leave model_version out",
            {"model_version": [f"Must be {str(version)!r}, the version of the URL."]})


def requested_outputs(iface: ModelInterface, req: InferRequest) -> list[tuple[int, bool]]:
    """[(index of the output in ``iface.outputs``, as binary data)] the answer must carry;
    InvalidRequest for anything unknown. Checked before predicting, so a bad request costs
    no forward pass."""
    binary_default = flag(req.parameters or {}, "binary_data_output", {})
    names = iface.output_names
    if req.outputs is None:
        return [(i, binary_default) for i in range(len(names))]
    plan = []
    for i, out in enumerate(req.outputs):
        where = {"outputs": str(i)}
        if out.name not in names:
            raise InvalidRequest(f"unknown output {out.name!r}; this model returns "
                                 f"{', '.join(names)}", nest(where, {"name": [
                                     f"Must be one of: {', '.join(names)}."]}))
        params = out.parameters or {}
        check_parameters(params, OUTPUT_PARAMETERS, where, f"output {out.name!r}")
        binary = flag(params, "binary_data", where) if "binary_data" in params \
            else binary_default
        plan.append((names.index(out.name), binary))
    return plan
