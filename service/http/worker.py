"""The gunicorn worker class of the service: gevent connections, one request computing at a time.

    worker_class = "service.http.worker.ServiceWorker"   (service/gunicorn.conf.py)

Why (docs/ROBUSTNESS.md has the measurements): a sync worker blocks on one slow client, so
a handful of sockets trickling headers take the server down. Here every connection is a
greenlet, so a held connection costs a few KiB, not a worker. Predictions still compute one
at a time per worker, as under sync workers (service/http/lane.py; long forward passes in
one native thread, so accepting and shedding go on meanwhile). On top of gunicorn's gevent
worker this class adds:

- time limits per phase of a connection: a new connection's request line and headers must
  arrive within ``SERVICE_HEADER_TIMEOUT`` seconds of connecting; a kept-alive connection
  may then idle ``SERVICE_KEEPALIVE_TIMEOUT`` seconds before the next request's first bytes
  (it is closed beyond), whose head then has ``SERVICE_HEADER_TIMEOUT`` seconds; bodies
  have ``SERVICE_BODY_TIMEOUT`` (service/http/limits.py). A head that stalls partway gets
  408. (gunicorn's gevent worker times idling and the head with one timer.)
- keep-alive that is fair: after each answer the connection's greenlet lets every other
  ready one run before reading its next request. Without that, a client whose next request
  is always already there when the answer is written (a fast or pipelining client) is
  served again and again while the worker's other connections wait (measured: p99 1.4 s
  against 6 ms). Kept-alive connections stay with the worker that accepted it, so a
  connection is closed after ``KEEPALIVE_REQUESTS`` answers, or after an answer that took
  over ``SLOW_ANSWER``: its client's next request then goes through the listen queue all
  workers share, to whichever is free first (measured, 256-row requests from 4 clients:
  30,000 rows/s this way, 17,600-29,800 with the connections left where they landed);
- an answer's head goes out in one send with its body (gunicorn writes them in two);
- ``Connection: close`` from the app is honoured (gunicorn drops hop-by-hop headers);
- on SIGTERM it stops accepting, then accepts and answers every connection already waiting
  in the listen backlog before closing the socket (sync workers leave them to be reset);
  answers from then on close their connection, and a kept-alive connection still idle
  ``STOP_LINGER`` seconds after the signal is closed (a request that reaches it before
  that is answered);
- while the app's lane is full, a new connection's request is refused by the app's door
  (service/http/door.py) before gunicorn's parser: the same 503 for half the CPU;
- when nine tenths of ``SERVICE_MAX_CONNECTIONS`` are open, the longest-idle kept-alive
  connections are closed to make room;
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

import contextlib
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
from gevent import Timeout
from gevent.monkey import get_original
from gevent.pool import Pool
from gevent.server import StreamServer
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

from .door import Door

_PAGE = os.sysconf("SC_PAGE_SIZE")
#: Linux's SO_TIMESTAMP (not exported by Python's socket module): a timeval per packet.
_SO_TIMESTAMP = 29
_TIMEVAL = struct.Struct("=qq")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMEVAL.size)


#: Answers on one connection before it is closed (nginx's ``keepalive_requests`` idea): its
#: client reconnects through the listen queue, which evens out connections across workers.
KEEPALIVE_REQUESTS = 100
#: An answer that took longer than this (seconds, from its complete head) closes its
#: connection: the client's next request goes through the listen queue to whichever worker
#: is free first, not to this one, which may be busy while another idles. Beside such an
#: answer the client's reconnect (~0.1 ms on loopback) costs little.
SLOW_ANSWER = 0.005
#: Seconds after a stop signal that an idle kept-alive connection is still given to send a
#: request (a client that just read an answer may be sending its next one) before it is closed.
STOP_LINGER = 1.0

_select = get_original("select", "select")


class HeadTimeout(Exception):
    """A request line and headers did not arrive within SERVICE_HEADER_TIMEOUT."""


class _Connection:
    """A client socket that times each phase of a connection (idle, head) and notes when the
    current request's first bytes arrived (``arrived``, from the kernel's SO_TIMESTAMP)."""

    __slots__ = ("sock", "arrived", "answered", "idle", "idle_since", "head_timeout",
                 "idle_timeout", "head_at", "_head_timer", "_held", "_unread")

    def __init__(self, sock: Any, head_timeout: float, idle_timeout: float) -> None:
        self.sock = sock
        self.arrived: float | None = None
        self.answered = 0
        #: True while it waits for the first bytes of a request after an answer (since
        #: ``idle_since``, monotonic).
        self.idle = False
        self.idle_since = 0.0
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout
        self.head_at = 0.0  # monotonic time the current request's head was complete
        self._head_timer: Any = None
        self._held = b""  # an answer's head, sent with the first bytes of its body
        self._unread = b""  # read by the door (service/http/door.py), handed back
        self.start_head_timer()  # a new connection: the head is due this long after connecting

    def start_head_timer(self) -> None:
        self._head_timer = Timeout.start_new(self.head_timeout, HeadTimeout)

    def head_done(self) -> None:
        self.head_at = time.monotonic()
        if self._head_timer is not None:
            self._head_timer.close()
            self._head_timer = None

    def answer_done(self) -> None:
        """The answer is written: the next request starts afresh."""
        self.flush()
        self.answered += 1
        self.arrived = None

    def sendall(self, data: bytes) -> None:
        """gunicorn writes an answer's head and its body in two calls; one send wakes the
        client once (measured: one row at conc. 8, 3,153 → 3,248 req/s)."""
        if self._held:
            data, self._held = self._held + data, b""
        elif data[:5] == b"HTTP/" and data[9:10] != b"1" and data[-4:] == b"\r\n\r\n":
            self._held = data  # a final answer's head: its body follows
            return
        self.sock.sendall(data)

    def flush(self) -> None:
        """Send a held answer head (one without a body, or before anything else)."""
        if self._held:
            data, self._held = self._held, b""
            self.sock.sendall(data)

    def unread(self, data: bytes) -> None:
        """Give ``data`` back: the next ``recv`` returns it (larger than asked, maybe)."""
        self._unread = data

    def recv(self, size: int) -> bytes:
        if self._unread:
            data, self._unread = self._unread, b""
            return data
        if self.arrived is not None:
            return self.sock.recv(size)
        if self.answered:  # kept alive: wait for the next request, then time its head
            self.idle = True
            self.idle_since = time.monotonic()
            self.sock.settimeout(self.idle_timeout)
            try:
                data, ancillary, _, _ = self.sock.recvmsg(size, _CMSG_SPACE)
            except TimeoutError:
                return b""  # idle too long: the parser ends the connection quietly
            finally:
                self.idle = False
                self.sock.settimeout(None)
            if data:
                self.start_head_timer()
        else:
            data, ancillary, _, _ = self.sock.recvmsg(size, _CMSG_SPACE)
        if data:
            self.arrived = _arrival(ancillary)
        return data

    def has_data(self) -> bool:
        """Bytes (or the client's close) wait to be read."""
        try:
            return bool(_select([self.sock.fileno()], [], [], 0)[0])
        except (OSError, ValueError):
            return True  # closed meanwhile: leave it to its greenlet

    def close_idle(self) -> None:
        """End a connection idle between requests: its greenlet reads the end and stops."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def __getattr__(self, name: str) -> Any:
        self.flush()  # anything else (send, sendfile, close...) comes after a held head
        return getattr(self.sock, name)


def _arrival(ancillary: list[tuple[int, int, bytes]]) -> float:
    """When the bytes ``recvmsg`` returned with ``ancillary`` reached the kernel (epoch
    seconds; now, where SO_TIMESTAMP is off)."""
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMP:
            sec, usec = _TIMEVAL.unpack(payload[:_TIMEVAL.size])
            return sec + usec / 1e6
    return time.time()


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
    408: "request timeout",
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
    head_timeout: float = 5.0
    idle_timeout: float = 75.0
    serving_since: float = 0.0
    #: The app's fast refusal while its lane is full (service/http/door.py), if it has one.
    door: Door | None = None

    def init_process(self) -> None:
        self._open: set[_Connection] = set()
        super().init_process()

    def timeout_ctx(self) -> Any:
        return contextlib.nullcontext()  # _Connection times idling and heads separately

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app = self.wsgi
        self.door = getattr(app, "extensions", {}).get("service.door")

        def honour_close(environ: dict[str, Any], start_response: Any) -> Any:
            sock = environ.get("gunicorn.socket")
            if isinstance(sock, _Connection) and sock.arrived is not None:
                # time spent before this worker could serve (it was booting: a reload, a
                # restart) is not overload, so the wait starts at the latest then
                environ["service.arrived"] = max(sock.arrived, self.serving_since)

            def respond(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
                if (isinstance(sock, _Connection)
                        and time.monotonic() - sock.head_at > SLOW_ANSWER):
                    start_response.__self__.force_close()
                for name, value in headers:
                    if name.lower() == "connection" and value.lower() == "close":
                        start_response.__self__.force_close()
                return start_response(status, headers, exc_info)
            return app(environ, respond)

        self.wsgi = honour_close

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        client.setblocking(1)
        conn = _Connection(client, self.head_timeout, self.idle_timeout)
        self._open.add(conn)
        if len(self._open) > self.worker_connections * 0.9:
            self._make_room()
        try:
            if self.door is not None and self.door.closed and self._refused(conn, addr):
                return
            super().handle(listener, conn, addr)
        finally:
            conn.head_done()
            self._open.discard(conn)

    def _refused(self, conn: _Connection, addr: Any) -> bool:
        """Whether the door (service/http/door.py) answered the connection's request with
        503 and closed it; if not, what it read is back in ``conn`` for the parser."""
        try:
            if not self.door.refuse(conn):
                return False
        except HeadTimeout as exc:
            self.handle_error(None, conn, addr, exc)
        except OSError:
            pass  # the client left: nothing to answer
        except Exception:  # a bug: logged; the connection is closed without a word
            self.log.exception("Error refusing a request at the door.")
        except BaseException:  # killed (a stop): close it on the way out
            util.close(conn)
            raise
        util.close(conn)
        return True

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> None:
        sock.head_done()
        if sock.answered + 1 >= KEEPALIVE_REQUESTS:
            req.must_close = True
        super().handle_request(listener_name, req, sock, addr)
        # still open (gunicorn raises StopIteration when it closes): let every other ready
        # connection take its turn before this one reads its next request
        sock.answer_done()
        gevent.idle()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: Exception) -> None:
        """gunicorn's status code, log line and access record for a request it could not
        parse (or an error outside the app), with the service's JSON error as the body."""
        if isinstance(exc, HeadTimeout):
            if client.arrived is not None:  # part of a head came: say why it is closed
                with contextlib.suppress(OSError):
                    util.write_nonblock(client, json_head_error(
                        408, "Request Timeout", f"the request line and headers did not "
                        f"arrive within {self.head_timeout:g} s (SERVICE_HEADER_TIMEOUT)"))
            return
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
        stopped = time.monotonic()
        while time.monotonic() < stopped + self.cfg.graceful_timeout and any(
                s.pool.free_count() != s.pool.size for _, s in servers):
            if time.monotonic() > stopped + STOP_LINGER:
                for conn in list(self._open):
                    if conn.idle and not conn.has_data():
                        conn.close_idle()
            self.notify()
            gevent.sleep(0.05)
        for _, server in servers:
            server.pool.kill(block=True, timeout=1)

    def _make_room(self) -> None:
        """Close the longest-idle kept-alive connections, a tenth of the connection limit
        (SERVICE_MAX_CONNECTIONS) at most, so that idle ones never keep new clients in
        the listen backlog (nginx does the same)."""
        idle = sorted((c for c in self._open if c.idle), key=lambda c: c.idle_since)
        for conn in idle[:max(1, self.worker_connections // 10)]:
            if not conn.has_data():
                conn.close_idle()

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
