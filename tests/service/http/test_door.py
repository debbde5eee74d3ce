"""The door (service/http/door.py): the worker's cheap 503 while its lane is full, on real
socket pairs. It must answer exactly what the full stack answers, and hand every other
request back byte for byte."""

from __future__ import annotations

import logging
import os
import time

import gevent
import orjson
import pytest
from gevent import socket as gsocket

from service.core.logs import AccessLog
from service.core.metrics import RequestMetrics
from service.http.door import Door
from service.http.lane import ModelLane
from service.http.worker import _Connection

TOKEN = "s3cret-token"


def post(body: bytes, *extra: str, method: str = "POST",
         path: str = "/v1/models/mnist:predict") -> bytes:
    fields = "".join(f"{line}\r\n" for line in extra)
    return (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{fields}\r\n").encode() + body


BODY = orjson.dumps({"instances": [[0.5] * 784] * 4})


class Rig:
    """A door in front of a lane that is full (held, ``max_queue=0``), a client socket and
    the server-side connection the worker would hand the door."""

    def __init__(self, token: str | None = None, max_body: int = 1 << 20,
                 body_timeout: float = 5.0) -> None:
        self.lane = ModelLane(max_queue=0, max_wait=2.0, threaded=True)
        self.metrics = RequestMetrics()
        self.log_r, log_w = os.pipe()
        self.access = AccessLog(fd=log_w)
        self.door = Door(self.lane, self.metrics, self.access, max_body, body_timeout, token)
        self.client, server = gsocket.socketpair()
        self.conn = _Connection(server, head_timeout=5.0, idle_timeout=5.0)
        self._held = self.lane.admitted(time.time())
        self._held.__enter__()

    def free_lane(self) -> None:
        self._held.__exit__(None, None, None)

    def answer(self) -> tuple[bytes, dict[str, str], dict]:
        """The answer the client got: status line, headers, JSON body."""
        self.conn.sock.close()
        data = b""
        while chunk := self.client.recv(1 << 16):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        assert int(headers["Content-Length"]) == len(body)
        return lines[0].encode(), headers, orjson.loads(body)

    def count(self, endpoint: str, status: int) -> float:
        return self.metrics.registry.get_sample_value(
            "model_server_requests_total",
            {"endpoint": endpoint, "model": "", "version": "", "status": str(status)}) or 0

    def close(self) -> None:
        self.conn.head_done()  # its head timer would go off in a later test
        self.client.close()
        self.conn.sock.close()
        os.close(self.log_r)
        os.close(self.access.fd)


@pytest.fixture
def rig():
    made: list[Rig] = []

    def make(**kwargs) -> Rig:
        made.append(Rig(**kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def access_logged():
    logger = logging.getLogger("service.access")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(level)


def test_a_whole_post_gets_the_stacks_503_counted_and_logged(rig, access_logged):
    r = rig()
    assert r.door.closed
    r.client.sendall(post(BODY, "X-Request-ID: trace-42"))
    assert r.door.refuse(r.conn) is True
    status, headers, payload = r.answer()
    assert status == b"HTTP/1.1 503 Service Unavailable"
    assert headers["Retry-After"] == "2"
    assert headers["Connection"] == "close"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Request-ID"] == "trace-42"
    assert "Date" in headers and headers["Server"] == "gunicorn"
    assert payload == {"error": "the server is overloaded (0 requests are already waiting); "
                                "retry after 2 s",
                       "details": {"reason": "queue", "max_queue": 0, "max_wait_s": 2.0}}
    assert r.count("overloaded", 503) == 1
    line = orjson.loads(os.read(r.log_r, 1 << 16).splitlines()[0])
    assert (line["request_id"], line["method"], line["path"], line["status"]) == (
        "trace-42", "POST", "/v1/models/mnist:predict", 503)


@pytest.mark.parametrize("target", [
    "/v1/models/mnist:predict?verbose=1#frag", "http://example.com/v1/models/mnist:predict",
    "/v1/models/mnist%3Apredict"])
def test_the_access_line_has_the_path_a_wsgi_environ_would(rig, access_logged, target):
    r = rig()
    r.client.sendall(post(BODY, path=target))
    assert r.door.refuse(r.conn) is True
    assert orjson.loads(os.read(r.log_r, 1 << 16))["path"] == "/v1/models/mnist:predict"


def test_a_body_in_pieces_is_read_whole_before_the_answer(rig):
    r = rig()
    raw = post(BODY)

    def trickle() -> None:
        for i in range(0, len(raw), 3000):
            r.client.sendall(raw[i:i + 3000])
            gevent.sleep(0.01)

    sender = gevent.spawn(trickle)
    assert r.door.refuse(r.conn) is True
    sender.join()
    assert r.answer()[0] == b"HTTP/1.1 503 Service Unavailable"


@pytest.mark.parametrize("raw", [
    post(b"", method="GET", path="/v2/health/ready"),
    post(BODY, "Transfer-Encoding: chunked"),
    post(BODY, "Expect: 100-continue"),
    post(BODY, "Content-Length: 5"),                      # two lengths
    post(BODY, " folded-continuation"),                   # obsolete line folding
    post(BODY, "Bad Header: x"),                          # not a token
    post(BODY, path="/a b"),                              # not a request target
    post(BODY) + b"GET / HTTP/1.1\r\n\r\n",               # pipelined bytes after the body
    b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: x\r\n\r\n",  # no Content-Length
    b"\x16\x03\x01\x02\x00\x01",                          # not HTTP (a TLS hello)
    post(BODY, path="/v1/models/mnist:predict?" + "q" * 9000),  # gunicorn's 414
    post(BODY, *(f"X-F{i}: v" for i in range(100))),       # gunicorn's 431
], ids=["get", "chunked", "expect", "two-lengths", "folding", "bad-name", "bad-target",
        "pipelined", "no-length", "tls", "long-line", "many-fields"])
def test_anything_else_is_handed_back_byte_for_byte(rig, raw):
    r = rig()
    r.client.sendall(raw)
    r.client.shutdown(gsocket.SHUT_WR)
    assert r.door.refuse(r.conn) is False
    got = b""
    while chunk := r.conn.recv(1 << 16):
        got += chunk
    assert got == raw
    assert r.count("overloaded", 503) == 0


def test_a_body_over_the_limit_is_left_to_the_stacks_413(rig):
    r = rig(max_body=100)
    r.client.sendall(post(BODY))
    assert r.door.refuse(r.conn) is False


def test_the_bearer_token_is_checked_first(rig):
    for header, refused in ((None, False), (f"Authorization: Bearer {TOKEN}x", False),
                            (f"Authorization: bearer {TOKEN}", True)):
        r = rig(token=TOKEN)
        r.client.sendall(post(BODY, *([header] if header else [])))
        assert r.door.refuse(r.conn) is refused, header
    assert TOKEN not in repr(r.door)


def test_a_lane_freed_while_the_body_came_serves_the_request(rig):
    r = rig()
    raw = post(BODY)
    cut = raw.index(b"\r\n\r\n") + 10

    def send() -> None:
        r.client.sendall(raw[:cut])
        gevent.sleep(0.05)
        r.free_lane()
        r.client.sendall(raw[cut:])

    sender = gevent.spawn(send)
    assert r.door.refuse(r.conn) is False
    sender.join()
    assert r.conn.recv(1 << 20) == raw


def test_a_stalled_body_gets_408_within_the_body_timeout(rig):
    r = rig(body_timeout=0.2)
    raw = post(BODY)
    r.client.sendall(raw[:len(raw) // 2])
    t0 = time.monotonic()
    assert r.door.refuse(r.conn) is True
    assert 0.15 < time.monotonic() - t0 < 2
    status, headers, payload = r.answer()
    assert status == b"HTTP/1.1 408 Request Timeout"
    assert "SERVICE_BODY_TIMEOUT" in payload["error"]
    assert "X-Request-ID" in headers
    assert r.count("unmatched", 408) == 1


def test_an_open_lane_keeps_the_door_open():
    lane = ModelLane(max_queue=1, max_wait=1.0, threaded=True)
    door = Door(lane, RequestMetrics(), AccessLog(), 1 << 20, 5.0)
    assert not door.closed
    with lane.admitted(time.time()):
        assert not door.closed  # held, but room in the queue
    assert not Door(ModelLane(0, 1.0, threaded=False), RequestMetrics(), AccessLog(),
                    1 << 20, 5.0).closed  # no gevent: nothing is ever refused here
