"""HTTP errors: the one table from the core's (and the library's) errors to status codes, the
errors only HTTP has (405, 413, 415), and the handler that answers every failing request.

Nothing else in the service knows a status code. Every error answer is JSON
``{"error": "<message>", "details": {...}}``.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from model import InputError

from ..core.errors import (
    InvalidRequest,
    NotFound,
    NotReady,
    Overloaded,
    PictureTooLarge,
    ServiceError,
)

log = logging.getLogger("service.errors")


class MethodNotAllowed(ServiceError):
    """The route exists but not for this HTTP method."""

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message, {"allowed_methods": allowed})
        self.allowed = allowed


class PayloadTooLarge(ServiceError):
    """The body is larger than SERVICE_MAX_BODY_BYTES."""


class UnsupportedMediaType(ServiceError):
    """The body is not declared as JSON (or V2 binary tensor data)."""


#: The only place HTTP status codes are chosen. Subclasses inherit their base's code.
HTTP_STATUS: dict[type[Exception], int] = {
    InvalidRequest: 400,
    InputError: 400,
    NotFound: 404,
    MethodNotAllowed: 405,
    PayloadTooLarge: 413,
    PictureTooLarge: 413,
    UnsupportedMediaType: 415,
    NotReady: 503,
    Overloaded: 503,
}

#: Upper bound of an oversized body we still read (and discard) so the client receives the
#: 413 answer instead of a connection reset; larger bodies get the answer and a closed socket.
_DRAIN_LIMIT = 64 * 1024 * 1024


def status_of(exc: BaseException) -> int:
    """HTTP status for an exception raised while handling a request (500 if unexpected)."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def json_error(status: int, message: str, details: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None) -> Response:
    """The JSON error answer every failing request gets."""
    body = orjson.dumps({"error": message, "details": details or {}})
    return Response(body, status=status, headers=headers, mimetype="application/json")


def _from_werkzeug(exc: HTTPException) -> ServiceError:
    """Translate errors Flask/Werkzeug raise themselves (routing, body size) to ours."""
    code = exc.code or 500
    if code == 404:
        return NotFound(f"no route {request.method} {request.path}; see /openapi.json for "
                        "the API", {"path": request.path})
    if code == 405:
        allowed = sorted(m for m in (getattr(exc, "valid_methods", None) or [])
                         if m not in ("HEAD", "OPTIONS"))
        return MethodNotAllowed(f"{request.method} is not allowed on {request.path}; use "
                                f"{' or '.join(allowed)}", allowed)
    if code == 413:
        return PayloadTooLarge(
            f"request body is larger than the limit of {request.max_content_length} bytes "
            "(SERVICE_MAX_BODY_BYTES); send fewer instances per request",
            {"max_body_bytes": request.max_content_length,
             "content_length": request.content_length})
    if code == 400:
        return InvalidRequest(f"bad request: {exc.description}")
    if code == 415:
        return UnsupportedMediaType(str(exc.description))
    return ServiceError(f"{exc.name}: {exc.description}")


def _drain_body() -> None:
    """Read and drop a rejected body (bounded) so the client sees our answer, not a reset."""
    length = request.content_length
    if length is None and request.environ.get("wsgi.input_terminated"):
        length = _DRAIN_LIMIT  # chunked: read to its end, if it ends soon enough
    if not length or length > _DRAIN_LIMIT:
        return
    stream = request.environ.get("wsgi.input")
    try:
        while length > 0:
            chunk = stream.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)
    except Exception:  # noqa: BLE001 - the client went away; nothing to recover
        pass


def handle(exc: Exception) -> Response:
    """Answer any exception raised by a route: our errors, library errors, Flask's, bugs."""
    if isinstance(exc, HTTPException):
        exc = _from_werkzeug(exc)
    status = status_of(exc)
    headers = None
    if isinstance(exc, MethodNotAllowed):
        headers = {"Allow": ", ".join(exc.allowed)}
    elif isinstance(exc, PayloadTooLarge):
        _drain_body()
    elif isinstance(exc, Overloaded):
        headers = {"Retry-After": str(exc.retry_after)}
        record = request.environ.get("service.record")
        if record is not None:
            record.endpoint = "overloaded"
    if isinstance(exc, ServiceError):
        return json_error(status, exc.message, exc.details, headers)
    if isinstance(exc, InputError):
        return json_error(status, exc.message, {"instances": {str(k): v for k, v in
                                                              exc.details.items()}})
    request_id = request.environ.get("service.request_id")
    log.error("unhandled error", exc_info=exc, extra={"fields": {"request_id": request_id}})
    return json_error(status, "internal error; the server log has the details",
                      {"request_id": request_id})


def register_error_handlers(app: Flask) -> None:
    """Route every exception through ``handle`` so all errors are JSON."""
    app.register_error_handler(Exception, handle)
