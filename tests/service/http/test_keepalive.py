"""Kept-alive connections: reuse, fairness, idle and head limits (real gunicorn, one worker).

One worker, so every connection of a test shares one event loop: what a connection does
to the others is visible.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
import time

import orjson
import pytest

from service.http.worker import KEEPALIVE_REQUESTS
from tests.factories import make_classifier, make_regressor, random_housing, random_images
from tests.service.gunicorn_server import Server

KEEPALIVE = 1.5
HEADER_TIMEOUT = 2
MAX_WAIT = 1
PREDICT = "/v1/models/housing:predict"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("keepalive")
    artifacts = workdir / "artifacts"
    make_regressor(artifacts)
    make_classifier(artifacts)
    srv = Server(artifacts, workdir, env={"WEB_CONCURRENCY": "1",
                                          "SERVICE_KEEPALIVE_TIMEOUT": str(KEEPALIVE),
                                          "SERVICE_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
                                          "SERVICE_MAX_WAIT": str(MAX_WAIT)})
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def housing_body(rows: int = 1) -> bytes:
    return orjson.dumps({"instances": random_housing(rows, seed=3).tolist()})


def request_bytes(body: bytes) -> bytes:
    return (f"POST {PREDICT} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def read_answer(sock: socket.socket) -> bytes:
    """One whole answer (head and Content-Length body) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += sock.recv(65536)
    assert len(body) == length, "more than one answer"
    return head + b"\r\n\r\n" + body


def kept_alive_socket(port: int) -> socket.socket:
    """A connection that has had one answer and is kept alive."""
    for _ in range(10):  # an answer slower than SLOW_ANSWER (a busy machine) closes
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = read_answer(sock)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        if b"Connection: keep-alive" in answer:
            return sock
        sock.close()
    raise AssertionError("no answer kept its connection alive")


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed."""
    sock.settimeout(limit)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data, time.monotonic()


def test_a_connection_serves_many_requests_then_closes_at_the_cap(server):
    runs = []
    for _ in range(5):  # an answer slower than SLOW_ANSWER (a busy machine) closes early
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        headers = []
        try:
            while not headers or headers[-1] == "keep-alive":
                conn.request("POST", PREDICT, body=housing_body(), headers=JSON)
                resp = conn.getresponse()
                assert resp.status == 200
                resp.read()
                headers.append(resp.getheader("Connection"))
        finally:
            conn.close()
        runs.append(len(headers))
        if len(headers) == KEEPALIVE_REQUESTS:
            break
    assert max(runs) == KEEPALIVE_REQUESTS, runs  # never more answers on one connection


def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout(server):
    with kept_alive_socket(server.port) as sock:
        answered = time.monotonic()
        rest, closed = read_until_closed(sock, KEEPALIVE + 10)
    assert rest == b""  # closed without a word: no request had started
    assert KEEPALIVE - 0.3 <= closed - answered <= KEEPALIVE + 3, closed - answered


def test_time_idle_between_requests_is_not_time_waiting_for_the_model(server):
    """The bounded wait (SERVICE_MAX_WAIT) starts at each request's own first bytes."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    body = orjson.dumps({"instances": random_images(1).tolist()})
    try:
        for _ in range(2):
            conn.request("POST", "/v1/models/mnist:predict", body=body, headers=JSON)
            resp = conn.getresponse()
            assert resp.status == 200, resp.read()[:200]
            resp.read()
            time.sleep(MAX_WAIT + 0.2)  # idle longer than a request may wait, kept alive
    finally:
        conn.close()


def test_a_kept_alive_head_that_stalls_gets_408_from_its_first_bytes(server):
    with kept_alive_socket(server.port) as sock:
        time.sleep(KEEPALIVE / 2)  # idle, then half a head
        sock.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: t\r\n".encode())
        started = time.monotonic()
        answer, closed = read_until_closed(sock, HEADER_TIMEOUT + 10)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    body = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert "SERVICE_HEADER_TIMEOUT" in body["error"]
    # the head's own deadline, not what was left of the idle one
    assert HEADER_TIMEOUT - 0.3 <= closed - started <= HEADER_TIMEOUT + 3, closed - started


def pipeline_beside_one_request(port: int, count: int) -> tuple[list[float], float]:
    """Pipeline ``count`` requests on one connection; once the first answer is back, send
    one request on another. When each pipelined answer came, and when the other one did."""
    burst = request_bytes(housing_body()) * count
    answers: list[float] = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as pipe:

        def read_answers() -> None:
            marker = b"HTTP/1.1 200"
            carry = b""  # a marker may straddle two reads
            while len(answers) < count:
                try:
                    chunk = pipe.recv(1 << 20)
                except OSError:  # reset: closed early with requests unread (a slow answer)
                    return
                if not chunk:
                    return
                seen = carry + chunk
                answers.extend([time.monotonic()] * seen.count(marker))
                carry = seen[-(len(marker) - 1):]

        reader = threading.Thread(target=read_answers)
        reader.start()
        pipe.sendall(burst)
        deadline = time.monotonic() + 10
        while not answers and time.monotonic() < deadline:
            time.sleep(0.001)
        assert answers, "the pipelined requests were not answered"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("POST", PREDICT, body=housing_body(), headers=JSON)
            resp = conn.getresponse()
            answered_at = time.monotonic()
            assert resp.status == 200
        finally:
            conn.close()
        reader.join(timeout=60)
    return answers, answered_at


def test_a_pipelining_client_does_not_starve_the_other_connections(server):
    """A client whose next request is always already there would be served again and
    again; each answer now gives the other connections their turn first."""
    count = KEEPALIVE_REQUESTS - 1  # all on one connection
    for _ in range(3):  # an answer slower than SLOW_ANSWER (a busy machine) ends the pipe
        answers, answered_at = pipeline_beside_one_request(server.port, count)
        if len(answers) == count:
            break
    assert len(answers) == count
    before = sum(1 for t in answers if t <= answered_at)
    # served in turn with the pipelined ones, not after them
    assert before < count // 2, f"{before} of {count} pipelined answers came first"


def test_keepalive_timeout_0_closes_after_every_answer(tmp_path):
    make_regressor(tmp_path / "artifacts")
    srv = Server(tmp_path / "artifacts", tmp_path, env={"SERVICE_KEEPALIVE_TIMEOUT": "0"})
    try:
        srv.wait_ready()
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            sock.sendall(request_bytes(housing_body()))
            answer, _ = read_until_closed(sock, 10)
    finally:
        srv.stop()
    assert answer.startswith(b"HTTP/1.1 200")
    assert b"Connection: close" in answer.split(b"\r\n\r\n", 1)[0]


def test_idle_kept_alive_connections_make_room_for_new_clients(tmp_path):
    """With the connection limit nearly reached by idle kept-alive connections, the
    longest-idle ones are closed, so a new client is served, not left in the backlog."""
    make_regressor(tmp_path / "artifacts")
    srv = Server(tmp_path / "artifacts", tmp_path,
                 env={"WEB_CONCURRENCY": "1", "SERVICE_MAX_CONNECTIONS": "20"})
    held = []
    try:
        srv.wait_ready()
        while len(held) < 20:  # as many as the limit: without room made, the next waits
            held.append(kept_alive_socket(srv.port))
        for _ in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
            try:
                conn.request("POST", PREDICT, body=housing_body(), headers=JSON)
                assert conn.getresponse().status == 200
            finally:
                conn.close()
        readable, _, _ = select.select(held, [], [], 1.0)
        closed = sum(1 for sock in readable if sock.recv(1) == b"")
        assert 1 <= closed < len(held), closed  # the oldest idle ones, not all
    finally:
        for sock in held:
            sock.close()
        srv.stop()
