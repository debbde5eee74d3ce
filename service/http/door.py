"""``Door``: an overloaded worker's 503, answered before gunicorn's parser and the WSGI stack.

Under overload most requests are refused, and each refusal's CPU is taken from the
requests being served: the worker's event loop, which parses and answers them, is the one
that refuses. Measured (docs/BENCHMARKS.md), one worker refusing everything: 0.47-0.50 ms
of CPU a 503 through gunicorn's parser, the WSGI environ and the middleware; 0.24-0.27 ms
here. Beside a busy model thread (``python bench/robustness.py shedcost``): 0.87-0.90 ms
of event-loop CPU, 0.69-0.71 ms here. 3x overload of the default CNN: 75% of capacity
served before, 88% now (medians of six runs side by side).

When the worker's lane is full as a new connection comes in (service/http/worker.py),
``Door.refuse`` reads its first request. A plain ``POST`` or ``PUT`` with a
``Content-Length`` body, the lane still full once the body is in, gets the answer the
stack would give (the JSON error, ``Retry-After``, ``X-Request-ID``, one metrics
observation, one access-log line) and the connection is closed; a body still missing
after ``SERVICE_BODY_TIMEOUT`` gets the stack's 408. Anything else goes on unchanged: the
bytes read are handed back to the connection for gunicorn's parser (another method,
chunked or ``Expect`` bodies, a head this strict reading does not take, a wrong or missing
bearer token, a body over the size limit, bytes after the body, the lane freed meanwhile).
"""

from __future__ import annotations

import re
import time
from email.utils import formatdate
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes, urlsplit

import orjson
from gevent import Timeout

from ..core.auth import authorized
from ..core.logs import AccessLog
from ..core.metrics import RequestMetrics, request_id
from .lane import ModelLane

#: Larger heads, or heads of more fields, are handed back: gunicorn's parser may refuse
#: them (414, 431; limit_request_line, limit_request_fields in service/gunicorn.conf.py).
MAX_HEAD = 8190
MAX_FIELDS = 100
_CHUNK = 1 << 16

_REQUEST_LINE = re.compile(rb"(POST|PUT) ([!-~]+) HTTP/1\.[01]")
#: A field line this reading takes: a token name, a value without control characters.
_FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*?)[ \t]*")
#: Fields whose presence sends the request down the full path.
_HANDED_BACK = frozenset({b"transfer-encoding", b"expect", b"upgrade"})


class Conn(Protocol):
    """What the door needs of a connection (service/http/worker.py's ``_Connection``)."""

    def recv(self, size: int) -> bytes: ...
    def unread(self, data: bytes) -> None: ...
    def head_done(self) -> None: ...
    def sendall(self, data: bytes) -> None: ...


class BodyLate(Exception):
    """The body did not arrive within SERVICE_BODY_TIMEOUT."""


class Door:
    """Refuse a new connection's request while the worker's lane is full, cheaply."""

    def __init__(self, lane: ModelLane, metrics: RequestMetrics, access: AccessLog,
                 max_body_bytes: int, body_timeout: float, token: str | None = None) -> None:
        self.lane = lane
        self.metrics = metrics
        self.access = access
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self._token = token

    def __repr__(self) -> str:
        return f"Door(lane={self.lane!r}, token={'<hidden>' if self._token else None})"

    @property
    def closed(self) -> bool:
        """Whether new predictions would be refused now (the lane's queue is full)."""
        return self.lane.full

    def refuse(self, conn: Conn) -> bool:
        """Read ``conn``'s request and answer 503 if the lane is (still) full: True, the
        connection then needs closing. False: every byte read is back in ``conn``."""
        t0 = time.perf_counter()
        data = conn.recv(_CHUNK)
        end = data.find(b"\r\n\r\n")
        while end < 0 and data and len(data) < MAX_HEAD:
            more = conn.recv(_CHUNK)
            if not more:
                break
            data += more
            end = data.find(b"\r\n\r\n")
        head = self._head(data, end)
        if head is None:
            conn.unread(data)
            return False
        conn.head_done()
        try:
            data = self._read_body(conn, data, end + 4 + head.length)
        except BodyLate:
            rid = request_id(head.request_id)
            conn.sendall(_answer("408 Request Timeout", {
                "error": f"the request body did not arrive within {self.body_timeout:g} s "
                         "(SERVICE_BODY_TIMEOUT); send it in one go", "details": {}},
                [("X-Request-ID", rid)]))
            self._record(head, 408, "unmatched", t0, rid)
            return True
        answer = self._refusal(head, t0) if len(data) == end + 4 + head.length else None
        if answer is None:
            conn.unread(data)
            return False
        conn.sendall(answer)
        return True

    def _head(self, data: bytes, end: int) -> _Head | None:
        """The head of ``data`` (ending at ``end``) if the door may refuse its request."""
        head = _Head.parse(data[:end]) if end >= 0 else None
        if head is None or head.length > self.max_body_bytes or (
                self._token is not None and not authorized(self._token, head.authorization)):
            return None
        return head

    def _refusal(self, head: _Head, t0: float) -> bytes | None:
        """The 503 for a whole request with this ``head``, if the lane is still full."""
        if not self.lane.full:
            return None
        rid = request_id(head.request_id)
        exc = self.lane.queue_full()
        answer = _answer("503 Service Unavailable",
                         {"error": exc.message, "details": exc.details},
                         [("Retry-After", str(exc.retry_after)), ("X-Request-ID", rid)])
        self._record(head, 503, "overloaded", t0, rid)
        return answer

    def _read_body(self, conn: Conn, data: bytes, total: int) -> bytes:
        """``data`` with the rest of the body up to ``total`` bytes (fewer: the client
        closed), read within the body time limit."""
        if len(data) >= total:
            return data
        parts = [data]
        have = len(data)
        with Timeout(self.body_timeout, BodyLate):
            while have < total:
                more = conn.recv(min(_CHUNK, total - have))
                if not more:
                    break
                parts.append(more)
                have += len(more)
        return b"".join(parts)

    def _record(self, head: _Head, status: int, endpoint: str, t0: float, rid: str) -> None:
        """The metrics observation and access-log line the stack would have written."""
        seconds = time.perf_counter() - t0
        self.metrics.observe(endpoint, "", "", status, seconds)
        if self.access.enabled:
            self.access.write({
                "request_id": rid, "method": head.method, "path": head.path,
                "status": status, "duration_ms": round(seconds * 1e3, 3), "model": None,
                "version": None, "n_instances": 0})


class _Head:
    """The parts of a request head the door needs; ``parse`` takes only plain heads."""

    __slots__ = ("method", "path", "length", "authorization", "request_id")

    def __init__(self, method: str, path: str, length: int, authorization: str | None,
                 rid: str | None) -> None:
        self.method = method
        self.path = path
        self.length = length
        self.authorization = authorization
        self.request_id = rid

    @classmethod
    def parse(cls, head: bytes) -> _Head | None:
        """The head of a POST or PUT with one Content-Length and none of the fields that
        need the full parser, or None."""
        lines = head.split(b"\r\n")
        line = _REQUEST_LINE.fullmatch(lines[0])
        if line is None or len(head) > MAX_HEAD or len(lines) > MAX_FIELDS + 1:
            return None
        length = authorization = rid = None
        for raw in lines[1:]:
            field = _FIELD.fullmatch(raw)
            if field is None:
                return None
            name, value = field.group(1).lower(), field.group(2)
            if name in _HANDED_BACK:
                return None
            if name == b"content-length":
                if length is not None or not value.isdigit() or len(value) > 12:
                    return None
                length = int(value)
            elif name == b"authorization":
                if authorization is not None:
                    return None
                authorization = value.decode("latin-1")
            elif name == b"x-request-id":  # repeated: joined, as in a WSGI environ
                rid = value.decode("latin-1") if rid is None else f"{rid},{value.decode('latin-1')}"
        if length is None:
            return None
        target = line.group(2)  # origin form (/path?query) or absolute (http://host/path)
        path = (target.split(b"?", 1)[0].split(b"#", 1)[0] if target.startswith(b"/")
                else urlsplit(target).path or b"/")
        return cls(line.group(1).decode(), unquote_to_bytes(path).decode("latin-1"), length,
                   authorization, rid)


def _answer(status: str, error: dict[str, Any],
            headers: list[tuple[str, str]] | None = None) -> bytes:
    """A complete ``Connection: close`` answer carrying ``error`` as JSON, with the
    headers gunicorn writes on every answer."""
    body = orjson.dumps(error)
    lines = [f"HTTP/1.1 {status}", "Server: gunicorn",
             f"Date: {formatdate(usegmt=True)}", "Connection: close",
             "Content-Type: application/json", f"Content-Length: {len(body)}",
             *(f"{name}: {value}" for name, value in headers or [])]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
