"""Protocol abuse over raw sockets: every case is a 4xx or a closed connection, never a 5xx,
and the service still answers afterwards (real gunicorn on 127.0.0.1)."""

from __future__ import annotations

import gzip
import socket

import orjson
import pytest
import requests

from tests.factories import make_classifier, make_regressor, random_images
from tests.service.gunicorn_server import Server

BODY_TIMEOUT = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("protocol")
    artifacts = workdir / "artifacts"
    make_regressor(artifacts)
    make_classifier(artifacts)
    srv = Server(artifacts, workdir, env={"SERVICE_BODY_TIMEOUT": str(BODY_TIMEOUT),
                                          "SERVICE_LOG_LEVEL": "WARNING"})
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def exchange(port: int, data: bytes, half_close: bool = True, timeout: float = 10) -> int | None:
    """Send ``data`` on a new connection; the answer's status code, or None if the server
    closed the connection without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may refuse to read the rest: its answer still counts
        answer = b""
        try:
            while b"\r\n" not in answer:
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except ConnectionResetError:
            return None
    if not answer:
        return None
    return int(answer.split(b" ", 2)[1])


def whole_answer(port: int, data: bytes, timeout: float = 10) -> tuple[int, dict, bytes]:
    """Send ``data`` on a new connection, read to the close: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split(" ", 2)[1]), {k.lower(): v for k, v in headers.items()}, body


def request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


POST = "POST /v1/models/mnist:predict HTTP/1.1\nHost: x\nContent-Type: application/json\n"
GOOD = orjson.dumps({"instances": random_images(1).tolist()})
DEEP = b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
BAD_UTF8 = b'{"instances": ["\xff\xfe"]}'
BOMB = gzip.compress(b"[" + b"0," * 5_000_000 + b"0]")  # 10 MB of JSON in ~10 KB

CASES = {
    "content-length and chunked": request(
        POST + f"Content-Length: {len(GOOD)}\nTransfer-Encoding: chunked\n",
        b"5\r\nhello\r\n0\r\n\r\n"),
    "two content-lengths": request(
        POST + f"Content-Length: {len(GOOD)}\nContent-Length: 3\n", GOOD),
    "negative content-length": request(POST + "Content-Length: -1\n", GOOD),
    "bad chunk size": request(POST + "Transfer-Encoding: chunked\n", b"zz\r\nhello\r\n0\r\n\r\n"),
    "chunked twice": request(POST + "Transfer-Encoding: chunked, chunked\n",
                             b"2\r\n{}\r\n0\r\n\r\n"),
    "request line of 100 KB": request(f"GET /v2/{'a' * 100_000} HTTP/1.1\nHost: x\n"),
    "header of 100 KB": request(f"GET /v2 HTTP/1.1\nHost: x\nX-Big: {'b' * 100_000}\n"),
    "1,000 headers": request("GET /v2 HTTP/1.1\nHost: x\n" + "X-A: 1\n" * 1000),
    "100,000-deep JSON, V1": request(POST + f"Content-Length: {len(DEEP)}\n", DEEP),
    "100,000-deep JSON, V2": request(
        "POST /v2/models/mnist/infer HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        f"Content-Length: {len(DEEP)}\n", DEEP),
    "invalid UTF-8 body": request(POST + f"Content-Length: {len(BAD_UTF8)}\n", BAD_UTF8),
    "invalid UTF-8 in the path": b"GET /v2/models/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    "gzip bomb": request(POST + f"Content-Encoding: gzip\nContent-Length: {len(BOMB)}\n", BOMB),
    "body stops halfway, then EOF": request(POST + f"Content-Length: {len(GOOD)}\n",
                                            GOOD[: len(GOOD) // 2]),
    "not HTTP at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200),
    "HTTP/2 preface on HTTP/1": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "unknown method": request("BREW /v2 HTTP/1.1\nHost: x\n"),
    "NUL in a header": request("GET /v2 HTTP/1.1\nHost: x\nX-A: a\x00b\n"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_abuse_is_a_4xx_or_a_closed_connection(server, name):
    status = exchange(server.port, CASES[name])
    assert status is None or 400 <= status < 500, (name, status)
    assert requests.get(server.url + "/v2/health/ready", timeout=5).status_code == 200


#: Heads gunicorn's parser refuses before the app runs: the status code it chooses.
REFUSED_HEADS = {
    "request line of 100 KB": 414,
    "header of 100 KB": 431,
    "1,000 headers": 431,
    "NUL in a header": 400,
    "HTTP/2 preface on HTTP/1": 400,
    "content-length and chunked": 400,
    "two content-lengths": 400,
    "negative content-length": 400,
    "chunked twice": 400,
    "bad request line": 400,
    "bad HTTP version": 400,
}
CASES["bad request line"] = b"GET\r\nHost: x\r\n\r\n"
CASES["bad HTTP version"] = request("GET /v2 HTTP/9.9\nHost: x\n")


@pytest.mark.parametrize("name", list(REFUSED_HEADS))
def test_refused_heads_get_the_json_error_with_the_parsers_status(server, name):
    status, headers, body = whole_answer(server.port, CASES[name])
    assert status == REFUSED_HEADS[name], (name, status, body[:300])
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    answer = orjson.loads(body)
    assert set(answer) == {"error", "details"} and answer["details"] == {}
    assert answer["error"] and "<" not in answer["error"]  # words, not gunicorn's HTML page
    assert requests.get(server.url + "/v2/health/ready", timeout=5).status_code == 200


def test_body_that_stops_halfway_and_stays_open_gets_408(server):
    data = request(POST + f"Content-Length: {len(GOOD)}\n", GOOD[: len(GOOD) // 2])
    assert exchange(server.port, data, half_close=False, timeout=BODY_TIMEOUT + 10) == 408


def test_no_server_error_was_logged(server):
    resp = requests.post(server.url + "/v1/models/mnist:predict", data=GOOD, timeout=10,
                         headers={"Content-Type": "application/json"})
    assert resp.status_code == 200
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    assert 'status="5' not in metrics
    assert "Traceback" not in server.log.read_text()
