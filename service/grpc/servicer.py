"""``Servicer``: the protocol's ``GRPCInferenceService`` as a thin adapter to ``DataPlane``.

Each call is answered through ``Servicer._answer``: the bearer-token check (health calls are
open), the handler, the error table, one metrics observation and one JSON request-log line,
as ``service.http.observer`` does for HTTP. ``generic_handler`` registers the calls with a
lenient parser, so bytes that are not the call's message are INVALID_ARGUMENT, not the
INTERNAL grpcio answers for a request it cannot parse.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from ..core.auth import authorized
from ..core.dataplane import DataPlane
from ..core.errors import InvalidRequest, NotReady
from ..core.logs import AccessLog
from ..core.metrics import RequestMetrics, RequestRecord, request_id
from ..core.signature import SERVER_NAME, SERVER_VERSION
from ..imaging import DEFAULT_MAX_PIXELS
from ..picture_tensors import picture_request, with_picture_output
from . import convert
from .errors import INTERNAL_MESSAGE, Unauthenticated, status_of
from .proto import grpc_predict_v2_pb2 as pb
from .proto import grpc_predict_v2_pb2_grpc as pb_grpc

log = logging.getLogger("service.grpc")

SERVICE_NAME = "inference.GRPCInferenceService"
SERVICE = f"/{SERVICE_NAME}/"
#: Each call's request and response message types.
MESSAGES = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
}
#: Calls a load balancer or probe makes without a token.
OPEN_CALLS = frozenset({"ServerLive", "ServerReady", "ModelReady"})
EXTENSIONS: list[str] = []

Handler = Callable[[Any, RequestRecord], Any]


class Undecodable:
    """What a call receives instead of a message when its bytes do not parse as one."""

    def __init__(self, error: str) -> None:
        self.error = error


def _lenient(message_type: Any) -> Callable[[bytes], Any]:
    """A request deserializer that returns Undecodable rather than raising."""
    def parse(data: bytes) -> Any:
        try:
            return message_type.FromString(data)
        except DecodeError as exc:
            return Undecodable(str(exc))
    return parse


def generic_handler(servicer: Servicer) -> grpc.GenericRpcHandler:
    """The six calls of ``servicer`` under the protocol's service name."""
    return grpc.method_handlers_generic_handler(SERVICE_NAME, {
        call: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, call), request_deserializer=_lenient(request),
            response_serializer=response.SerializeToString)
        for call, (request, response) in MESSAGES.items()})


class Servicer(pb_grpc.GRPCInferenceServiceServicer):
    """The six calls of the protocol over one DataPlane; ``token`` set: bearer auth;
    pictures above ``max_image_pixels`` refused before decoding."""

    def __init__(self, dataplane: DataPlane, metrics: RequestMetrics, access: AccessLog,
                 token: str | None = None, max_image_pixels: int = DEFAULT_MAX_PIXELS,
                 ) -> None:
        self.dataplane = dataplane
        self.metrics = metrics
        self.access = access
        self.token = token
        self.max_image_pixels = max_image_pixels

    # -- the protocol's calls ------------------------------------------------------------
    def ServerLive(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer("ServerLive", request, context, self._live)

    def ServerReady(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer("ServerReady", request, context, self._ready)

    def ModelReady(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer("ModelReady", request, context, self._model_ready)

    def ServerMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer("ServerMetadata", request, context, self._server_metadata)

    def ModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer("ModelMetadata", request, context, self._metadata)

    def ModelInfer(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer("ModelInfer", request, context, self._infer)

    # -- handlers: message in, message out, core errors raised -----------------------------
    def _live(self, request: Any, record: RequestRecord) -> Any:
        return pb.ServerLiveResponse(live=self.dataplane.live())

    def _ready(self, request: Any, record: RequestRecord) -> Any:
        try:
            self.dataplane.ready()
        except NotReady:
            return pb.ServerReadyResponse(ready=False)
        return pb.ServerReadyResponse(ready=True)

    def _model_ready(self, request: Any, record: RequestRecord) -> Any:
        record.model = request.name
        try:
            mv = self.dataplane.version(request.name, request.version or None)
        except NotReady:
            return pb.ModelReadyResponse(ready=False)
        record.version = str(mv.version)
        return pb.ModelReadyResponse(ready=True)

    def _server_metadata(self, request: Any, record: RequestRecord) -> Any:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION,
                                         extensions=EXTENSIONS)

    def _metadata(self, request: Any, record: RequestRecord) -> Any:
        record.model = request.name
        meta = self.dataplane.metadata(request.name, request.version or None)
        return pb.ModelMetadataResponse(
            name=meta["name"], versions=meta["versions"], platform=meta["platform"],
            inputs=meta["inputs"], outputs=meta["outputs"])

    def _infer(self, request: Any, record: RequestRecord) -> Any:
        record.model = request.model_name
        mv = self.dataplane.version(request.model_name, request.model_version or None)
        record.version = str(mv.version)
        # pictures (input "image", BYTES) become the model's pixels as over HTTP V2
        req, pictures = picture_request(mv.interface, convert.to_request(request),
                                        self.max_image_pixels)
        res = self.dataplane.infer(mv, req, versioned=bool(request.model_version))
        record.instances = req.inputs[0].shape[0]  # the batch size infer has checked
        return convert.to_message(with_picture_output(res, pictures))

    # -- the one wrapper ---------------------------------------------------------------------
    def _answer(self, call: str, request: Any, context: grpc.ServicerContext,
                handler: Handler) -> Any:
        """Run ``handler``; map errors to status codes; observe and log the call."""
        t0 = time.perf_counter()
        metadata = dict(context.invocation_metadata())
        rid = request_id(metadata.get("x-request-id"))
        context.set_trailing_metadata((("x-request-id", rid),))
        record = RequestRecord()
        record.endpoint = f"grpc.{call}"
        code, message, response = grpc.StatusCode.OK, "", None
        try:
            if self.token and call not in OPEN_CALLS and \
                    not authorized(self.token, metadata.get("authorization")):
                raise Unauthenticated("this call needs 'authorization: Bearer <token>' "
                                      "metadata (SERVICE_AUTH_TOKEN)")
            if isinstance(request, Undecodable):
                raise InvalidRequest(f"the request is not a valid {call} request message "
                                     f"({request.error})")
            response = handler(request, record)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status code
            code, message = status_of(exc)
            if message == INTERNAL_MESSAGE:
                log.error("unhandled error", exc_info=exc,
                          extra={"fields": {"request_id": rid}})
        seconds = time.perf_counter() - t0
        n = record.instances if code is grpc.StatusCode.OK else 0
        self.metrics.observe(record.endpoint, record.model, record.version, code.name,
                             seconds, n)
        if self.access.enabled:
            self.access.write({
                "request_id": rid, "method": "POST", "path": SERVICE + call,
                "status": code.name, "duration_ms": round(seconds * 1e3, 3),
                "model": record.model or None, "version": record.version or None,
                "n_instances": n})
        if code is not grpc.StatusCode.OK:
            context.abort(code, message)
        return response
