"""gRPC status codes: the one table from the core's (and the library's) errors to codes, as
``service.http.errors`` is for HTTP. Never UNKNOWN or INTERNAL for anything a client sent."""

from __future__ import annotations

import grpc

from model import InputError

from ..core.errors import InvalidRequest, NotFound, NotReady, ServiceError


class Unauthenticated(ServiceError):
    """The call lacks ``authorization: Bearer <SERVICE_AUTH_TOKEN>`` metadata."""


#: Subclasses inherit their base's code. RESOURCE_EXHAUSTED (message larger than
#: SERVICE_MAX_BODY_BYTES) is answered by gRPC itself before a handler runs.
GRPC_STATUS: dict[type[Exception], grpc.StatusCode] = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    InputError: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    NotReady: grpc.StatusCode.UNAVAILABLE,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
}

INTERNAL_MESSAGE = "internal error; the server log has the details"


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """(code, message) for an exception raised while answering a call (INTERNAL if a bug)."""
    for cls in type(exc).__mro__:
        if cls in GRPC_STATUS:
            return GRPC_STATUS[cls], exc.message  # type: ignore[attr-defined]
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE
