"""The gunicorn worker class of the service: gevent connections, one request computing at a time.

    worker_class = "service.http.worker.ServiceWorker"   (service/gunicorn.conf.py)

Why (docs/ROBUSTNESS.md has the measurements): a sync worker blocks on one slow client, so
a handful of sockets trickling headers take the server down. Here every connection is a
greenlet, so a held connection costs a few KiB, not a worker. Predictions still compute one
at a time per worker, as under sync workers (service/http/lane.py; long forward passes in
one native thread, so accepting and shedding go on meanwhile). On top of gunicorn's gevent
worker this class adds:

- a request line and headers must arrive within ``keepalive`` seconds (gunicorn's gevent
  worker times the whole read, not each packet), bodies within ``SERVICE_BODY_TIMEOUT``
  (service/http/limits.py);
- ``Connection: close`` from the app is honoured (gunicorn drops hop-by-hop headers);
- one request per connection, as under sync workers: a kept-alive connection stays with
  the worker that accepted it, so requests queue behind one worker while another is free
  (measured: p99 230 ms against 57 ms with eight clients on a busy machine); closed after
  each answer, every request goes through the listen queue all workers share;
- on SIGTERM it stops accepting, then accepts and answers every connection already waiting
  in the listen backlog before closing the socket (sync workers leave them to be reset);
- a worker whose resident memory passes ``SERVICE_MAX_WORKER_MEMORY`` MiB restarts
  gracefully;
- each request carries the kernel's receive time of its first bytes
  (``environ["service.arrived"]``, from SO_TIMESTAMP), so the bounded wait of
  service/http/limits.py counts the time it spent in the listen backlog too;
- a request head gunicorn's parser refuses (bad request line or header, a request line
  over ``limit_request_line`` (414), too many or too long header fields (431), bad chunked
  framing...) is answered with gunicorn's status code but the service's JSON error body
  instead of gunicorn's HTML page (``handle_error``).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
import time
from functools import partial
from typing import Any

import gevent
import orjson
from gevent.pool import Pool
from gevent.server import StreamServer
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

_PAGE = os.sysconf("SC_PAGE_SIZE")
#: Linux's SO_TIMESTAMP (not exported by Python's socket module): a timeval per packet.
_SO_TIMESTAMP = 29
_TIMEVAL = struct.Struct("=qq")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMEVAL.size)


class _Stamped:
    """A client socket whose reads note when the current request's first bytes arrived."""

    __slots__ = ("sock", "arrived")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.arrived: float | None = None

    def recv(self, size: int) -> bytes:
        if self.arrived is not None:
            return self.sock.recv(size)
        data, ancillary, _, _ = self.sock.recvmsg(size, _CMSG_SPACE)
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMP:
                sec, usec = _TIMEVAL.unpack(payload[:_TIMEVAL.size])
                self.arrived = sec + usec / 1e6
        if self.arrived is None and data:
            self.arrived = time.time()
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def resident_mib() -> float:
    """This process's resident memory in MiB (from /proc; 0 where there is none)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE / (1 << 20)
    except OSError:
        return 0.0


class _Named:
    """Stands in for a listener in request handlers: its address outlives its closing."""

    def __init__(self, name: Any) -> None:
        self.name = name

    def getsockname(self) -> Any:
        return self.name


class _Captured:
    """Stands in for a client socket to keep what gunicorn would have written to it."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0  # gunicorn's write_nonblock then writes without touching blocking mode

    def sendall(self, data: bytes) -> None:
        self.data += data


#: What each refused head's message starts with, by gunicorn's status code.
_HEAD_ERRORS = {
    400: "malformed request",
    403: "request refused",
    414: "request line too long",
    417: "unsupported Expect header",
    431: "request header fields too large",
    501: "unsupported transfer coding",
}


def json_head_error(status: int, reason: str, detail: str) -> bytes:
    """The HTTP answer, ``Connection: close``, with the service's JSON error for a request
    the server refused before the app saw it (``detail``: gunicorn's words for it; never
    shown for a 5xx, which may be a bug)."""
    if status >= 500 and status != 501:
        message = "internal error; the server log has the details"
    else:
        message = _HEAD_ERRORS.get(status, "bad request")
        if detail:
            message += f": {detail[:200]}"
    body = orjson.dumps({"error": message, "details": {}})
    return (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode("latin-1") + body


def _status_of(written: bytes) -> tuple[int, str]:
    """(status, reason) of the answer gunicorn wrote."""
    _, code, reason = (written.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
                       + ["", ""])[:3]
    return (int(code), reason) if code.isdigit() else (500, "Internal Server Error")


class ServiceWorker(GeventWorker):
    """gunicorn's gevent worker with request time limits and a drained stop."""

    #: Set by the pre_fork hook of gunicorn.conf.py.
    max_memory_mib: int = 0
    serving_since: float = 0.0

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app = self.wsgi

        def honour_close(environ: dict[str, Any], start_response: Any) -> Any:
            sock = environ.get("gunicorn.socket")
            if isinstance(sock, _Stamped) and sock.arrived is not None:
                # time spent before this worker could serve (it was booting: a reload, a
                # restart) is not overload, so the wait starts at the latest then
                environ["service.arrived"] = max(sock.arrived, self.serving_since)
                sock.arrived = None  # the next request on this connection starts afresh

            def respond(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
                for name, value in headers:
                    if name.lower() == "connection" and value.lower() == "close":
                        start_response.__self__.force_close()
                return start_response(status, headers, exc_info)
            return app(environ, respond)

        self.wsgi = honour_close

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        client.setblocking(1)
        super().handle(listener, _Stamped(client), addr)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        req.must_close = True  # one request per connection (see the module docstring)
        return super().handle_request(listener_name, req, sock, addr)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: Exception) -> None:
        """gunicorn's status code, log line and access record for a request it could not
        parse (or an error outside the app), with the service's JSON error as the body."""
        captured = _Captured()
        super().handle_error(req, captured, addr, exc)
        if not captured.data:
            return
        status, reason = _status_of(captured.data)
        try:
            util.write_nonblock(client, json_head_error(status, reason, str(exc)))
        except Exception:  # noqa: BLE001 - the client is gone; nothing to answer
            self.log.debug("Failed to send error message.")

    def run(self) -> None:
        self.serving_since = time.time()
        servers = []
        for listener in self.sockets:
            listener.setblocking(1)
            if sys.platform == "linux" and listener.family in (socket.AF_INET,
                                                               socket.AF_INET6):
                # inherited by accepted sockets; elsewhere the wait starts at parsing
                listener.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMP, 1)
            name = _Named(listener.getsockname())
            server = StreamServer(listener, handle=partial(self.handle, name),
                                  spawn=Pool(self.worker_connections))
            server.max_accept = 1  # take one connection per turn; siblings take the rest
            server.start()
            servers.append((listener, server))
        while self.alive:
            self.notify()
            self._check_memory()
            gevent.sleep(0.25)  # how soon a stop signal is acted on
        for _, server in servers:
            server.stop_accepting()
        for listener, server in servers:
            self._drain_backlog(listener, server)
            server.close()
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while time.monotonic() < deadline and any(
                s.pool.free_count() != s.pool.size for _, s in servers):
            self.notify()
            gevent.sleep(0.05)
        for _, server in servers:
            server.pool.kill(block=True, timeout=1)

    def _drain_backlog(self, listener: Any, server: StreamServer) -> None:
        """Accept every connection already queued on the listener and serve it."""
        listener.setblocking(False)
        while True:
            try:
                client, addr = listener.accept()
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                    return
                raise
            server.pool.spawn(self.handle, _Named(listener.getsockname()), client, addr)

    def _check_memory(self) -> None:
        if self.max_memory_mib and self.alive:
            rss = resident_mib()
            if rss > self.max_memory_mib:
                self.log.warning("worker %s uses %.0f MiB, over SERVICE_MAX_WORKER_MEMORY=%d: "
                                 "restarting it", self.pid, rss, self.max_memory_mib)
                self.alive = False
