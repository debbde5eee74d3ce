"""WSGI middleware that bounds what one request may cost: body time and the wait for a CPU.

``Limits`` reads a request body in full before the app sees it, within
``SERVICE_BODY_TIMEOUT`` seconds in total (a client trickling bytes gets 408 and a closed
connection), then passes predictions through the worker's ``ModelLane``
(service/http/lane.py), one at a time: when ``SERVICE_MAX_QUEUE`` requests already wait in
this worker, it gets 503 with ``Retry-After`` at once; so does one that has waited over
``SERVICE_MAX_WAIT`` seconds since its first bytes reached the kernel (time in the listen
backlog counts), at the moment it passes that limit. The backlog's length is no measure:
idle and slow connections wait there too. Under a sync worker only the body deadline and
the wait measured from arrival act.
"""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from ..core.errors import Overloaded
from .lane import ModelLane


def _gevent_timeout_class() -> Any:
    """gevent's Timeout when this process runs under gevent (service/worker.py), else None."""
    try:
        from gevent import Timeout, monkey
    except ImportError:
        return None
    return Timeout if monkey.is_module_patched("socket") else None


_gevent_timeout: Any = None

#: Requests the queue applies to: the ones that run a model. Probes and metadata pass.
_QUEUED_METHODS = frozenset({"POST", "PUT"})


class BodyTimeout(Exception):
    """The body did not arrive within the deadline."""


class DeadlineReader:
    """A ``wsgi.input`` whose reads, together, end by a monotonic deadline.

    Under gevent the whole read is timed (a client cannot keep it going by sending a byte
    before every per-packet timeout); otherwise each read sets the socket timeout to the
    time left, which bounds a stalled client.
    """

    def __init__(self, stream: Any, sock: socket.socket | None, deadline: float) -> None:
        self.stream = stream
        self.sock = sock
        self.deadline = deadline

    def read(self, size: int = -1) -> bytes:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BodyTimeout()
        if self.sock is not None:
            self.sock.settimeout(left)
        try:
            if _gevent_timeout is None:
                return self.stream.read(size)
            with _gevent_timeout(left, BodyTimeout):
                return self.stream.read(size)
        except TimeoutError:
            raise BodyTimeout() from None
        finally:
            if self.sock is not None:
                try:
                    self.sock.settimeout(None)
                except OSError:
                    pass

    def readline(self, size: int = -1) -> bytes:
        return self.stream.readline(size)


def error_response(start_response: Callable[..., Any], status: str, message: str,
                   details: dict[str, Any] | None = None,
                   headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    """The service's JSON error answer, written without Flask (``Connection: close`` is
    honoured by service/worker.py)."""
    body = orjson.dumps({"error": message, "details": details or {}})
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body))), *(headers or [])])
    return [body]


class Limits:
    """Buffer the body within a deadline, then admit predictions through a bounded queue."""

    def __init__(self, app: Callable[..., Iterable[bytes]], max_body_bytes: int,
                 body_timeout: float, lane: ModelLane) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.lane = lane
        global _gevent_timeout
        _gevent_timeout = _gevent_timeout_class()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        try:
            self._read_body(environ)
        except BodyTimeout:
            return error_response(
                start_response, "408 Request Timeout",
                f"the request body did not arrive within {self.body_timeout:g} s "
                "(SERVICE_BODY_TIMEOUT); send it in one go", {},
                [("Connection", "close")])
        except _TooLarge:
            return error_response(
                start_response, "413 Request Entity Too Large",
                f"request body is larger than the limit of {self.max_body_bytes} bytes "
                "(SERVICE_MAX_BODY_BYTES); send fewer instances per request",
                {"max_body_bytes": self.max_body_bytes}, [("Connection", "close")])
        except _BrokenBody as exc:
            return error_response(start_response, "400 Bad Request",
                                  f"bad request body: {exc}", {}, [("Connection", "close")])
        if environ.get("REQUEST_METHOD") not in _QUEUED_METHODS:
            return self.app(environ, start_response)
        return self._admit(environ, start_response)

    def _admit(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        # when its first bytes reached the kernel (service/http/worker.py), else now
        arrived = environ.get("service.arrived") or time.time()
        try:
            with self.lane.admitted(arrived):
                return self.app(environ, start_response)
        except Overloaded as exc:
            return shed(environ, start_response, exc)

    def _read_body(self, environ: dict[str, Any]) -> None:
        """Replace ``wsgi.input`` with the whole body, read by the deadline."""
        length = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not chunked and length in ("", "0"):
            return
        deadline = time.monotonic() + self.body_timeout
        reader = DeadlineReader(environ["wsgi.input"], environ.get("gunicorn.socket"),
                                deadline)
        if not chunked and length.isdigit() and int(length) > self.max_body_bytes:
            # Too large: the app answers 413 and drains what it can, within the deadline.
            environ["wsgi.input"] = reader
            return
        chunks: list[bytes] = []
        total = 0
        want = int(length) if length.isdigit() and not chunked else None
        try:
            while want is None or total < want:
                chunk = reader.read(min(1 << 16, want - total) if want else 1 << 16)
                if not chunk:
                    break
                total += len(chunk)
                if total > self.max_body_bytes:
                    raise _TooLarge()
                chunks.append(chunk)
        except (BodyTimeout, _TooLarge):
            raise
        except Exception as exc:  # noqa: BLE001 - the server's parser rejected the framing
            raise _BrokenBody(type(exc).__name__) from None
        if want is not None and total < want:
            raise _BrokenBody(f"the body ended after {total} of {want} bytes")
        body = b"".join(chunks)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["wsgi.input_terminated"] = True
        environ.pop("HTTP_TRANSFER_ENCODING", None)


def shed(environ: dict[str, Any], start_response: Callable[..., Any],
         exc: Overloaded) -> list[bytes]:
    """The 503 answer to an overloaded request, counted under endpoint ``overloaded``."""
    record = environ.get("service.record")
    if record is not None:
        record.endpoint = "overloaded"
    # closed: the retry comes through the listen queue, to whichever worker is free first
    return error_response(start_response, "503 Service Unavailable", exc.message,
                          exc.details, [("Retry-After", str(exc.retry_after)),
                                        ("Connection", "close")])


class _TooLarge(Exception):
    """A chunked body passed SERVICE_MAX_BODY_BYTES."""


class _BrokenBody(Exception):
    """The body's framing was invalid (bad chunk size, truncated)."""
