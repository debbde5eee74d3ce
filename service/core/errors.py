"""The serving core's errors: what went wrong with a request, in words a person can act on.

No protocol knows itself here: the HTTP layer maps these to status codes
(``service.http.errors``), a gRPC front end would map them to its codes, the batch scorer to
error reports and exit codes.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of every error the service raises on purpose: a message and per-field details."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}


class InvalidRequest(ServiceError):
    """The request does not validate: wrong shape, type, missing field, bad value, bad batch."""


class MalformedJSON(InvalidRequest):
    """The body is not parseable JSON (or not a JSON object)."""


class NotFound(ServiceError):
    """No such route, model or version."""


class ModelNotFound(NotFound):
    """No model of that name in the registry."""


class VersionNotFound(NotFound):
    """The model exists but has no such version."""


class NotReady(ServiceError):
    """A model, a version or the server cannot serve yet (e.g. its artifact failed to load)."""


def first_message(details: Any, path: str = "") -> str:
    """'instances.3.RM: Not a valid number.' for the first leaf of nested details."""
    if isinstance(details, dict) and details:
        k = next(iter(details))
        return first_message(details[k], f"{path}.{k}" if path else str(k))
    if isinstance(details, list) and details:
        return f"{path}: {details[0]}" if path else str(details[0])
    return path or "invalid"


class PictureTooLarge(InvalidRequest):
    """A picture has more pixels (or base64 bytes) than the server decodes."""


class Overloaded(ServiceError):
    """Too many requests wait for the model, or this one waited too long: retry later."""

    def __init__(self, message: str, details: dict[str, Any] | None = None,
                 retry_after: int = 1) -> None:
        super().__init__(message, details)
        self.retry_after = retry_after
