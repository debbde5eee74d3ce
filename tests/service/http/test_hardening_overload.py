"""Overload is shed, not queued: a bounded wait, then 503 + Retry-After at once (real gunicorn).

bench/robustness.py offers 3x capacity for 20 s; this is the short version.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import requests

from tests.factories import random_images
from tests.service.gunicorn_server import Server
from tests.service.http.test_hardening_lifecycle import PREDICT, slow_model
from tests.service.http.test_keepalive import kept_alive_socket, read_answer

MAX_QUEUE = 3
MAX_WAIT = 0.5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("overload")
    srv = Server(slow_model(workdir / "artifacts"), workdir,
                 env={"SERVICE_MAX_QUEUE": str(MAX_QUEUE), "SERVICE_MAX_WAIT": str(MAX_WAIT),
                      "SERVICE_MAX_BODY_BYTES": str(16 << 20), "SERVICE_LOG_LEVEL": "WARNING"})
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def timed_post(url: str, body: bytes) -> tuple[int, float, dict, dict]:
    t0 = time.monotonic()
    resp = requests.post(url + PREDICT, data=body, timeout=30,
                         headers={"Content-Type": "application/json"})
    return resp.status_code, time.monotonic() - t0, dict(resp.headers), resp.json()


def test_more_than_the_queue_holds_gets_fast_503s(server):
    # ~0.1 s of computing each on a quiet core: 24 at once wait longer than MAX_WAIT
    body = orjson.dumps({"instances": random_images(256).tolist()})
    one = timed_post(server.url, body)
    assert one[0] == 200
    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(lambda _: timed_post(server.url, body), range(48)))
    codes = [r[0] for r in results]
    assert set(codes) == {200, 503}, codes
    for status, seconds, headers, payload in results:
        if status == 503:
            assert headers["Retry-After"] == "1"
            assert "overloaded" in payload["error"]
            assert payload["details"]["reason"] in ("queue", "wait")
            # a shed request waited at most MAX_WAIT for a CPU, plus the prediction running
            # when it arrived and this busy machine's slack
            assert seconds < MAX_WAIT + 10 * one[1] + 2, seconds
    served = [r[1] for r in results if r[0] == 200]
    # a served request waited at most MAX_WAIT, then ran (plus slack for a shared machine)
    assert max(served) < MAX_WAIT + 10 * one[1] + 2, (max(served), one[1])
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    assert 'endpoint="overloaded"' in metrics and 'status="503"' in metrics


#: Long enough that a 503 sent only once a request has waited this long cannot pass for fast.
PATIENT_WAIT = 30


@pytest.fixture(scope="module")
def patient_server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("overload-patient")
    srv = Server(slow_model(workdir / "artifacts"), workdir,
                 env={"SERVICE_MAX_QUEUE": "2", "SERVICE_MAX_WAIT": str(PATIENT_WAIT),
                      "SERVICE_MAX_BODY_BYTES": str(16 << 20), "SERVICE_LOG_LEVEL": "WARNING"})
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def test_over_the_queue_503s_come_at_once_not_after_the_wait_limit(patient_server):
    """Each worker computes one request while its event loop keeps accepting and counting:
    beyond 2 waiting per worker a request is refused on arrival, long before it could have
    waited PATIENT_WAIT seconds, and a served one waited for at most two before it. (Before,
    a worker accepted nothing while computing: these 72 queued in the listen backlog and
    were served up to ~11-16 s late.) The bounds leave a large margin for a shared machine."""
    url = patient_server.url
    body = orjson.dumps({"instances": random_images(256).tolist()})
    assert timed_post(url, body)[0] == 200  # measured, so the next ones run in the thread
    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(lambda _: timed_post(url, body), range(72)))
    codes = [r[0] for r in results]
    assert set(codes) == {200, 503}, codes
    served = [r[1] for r in results if r[0] == 200]
    assert max(served) < PATIENT_WAIT / 3, sorted(served)
    shed = [r for r in results if r[0] == 503]
    for _, seconds, headers, payload in shed:
        assert headers["Retry-After"] == str(PATIENT_WAIT)
        assert payload["details"]["reason"] == "queue", payload
        assert seconds < PATIENT_WAIT / 4, seconds
    for status, _, _, payload in results:
        if status == 200:
            assert len(payload["predictions"]) == 256
    assert requests.get(url + "/v2/health/ready", timeout=10).status_code == 200


def test_probes_and_metadata_are_not_queued(server):
    body = orjson.dumps({"instances": random_images(128).tolist()})
    with ThreadPoolExecutor(16) as pool:
        load = [pool.submit(timed_post, server.url, body) for _ in range(32)]
        time.sleep(0.2)
        for path in ("/v2/health/ready", "/v2/health/live", "/v1/models"):
            assert requests.get(server.url + path, timeout=10).status_code == 200
        assert {f.result()[0] for f in load} <= {200, 503}


def test_a_new_connections_503_is_the_one_a_kept_alive_connection_gets(tmp_path):
    """While the lane is full, a new connection's request is refused by the door
    (service/http/door.py) before gunicorn's parser; a kept-alive connection's goes through
    the whole stack. Both must answer the same (status, headers, JSON)."""
    srv = Server(slow_model(tmp_path / "artifacts"), tmp_path,
                 env={"WEB_CONCURRENCY": "1", "SERVICE_MAX_QUEUE": "1",
                      "SERVICE_MAX_WAIT": str(PATIENT_WAIT),
                      "SERVICE_MAX_BODY_BYTES": str(16 << 20), "SERVICE_LOG_LEVEL": "WARNING"})
    try:
        srv.wait_ready()
        heavy = orjson.dumps({"instances": random_images(512).tolist()})
        assert timed_post(srv.url, heavy)[0] == 200  # measured: the next ones leave the loop
        body = orjson.dumps({"instances": random_images(1).tolist()})
        small = (f"POST {PREDICT} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        stop = threading.Event()

        def keep_full() -> None:
            while not stop.is_set():
                timed_post(srv.url, heavy)

        answers: dict[str, list[bytes]] = {"door": [], "stack": []}
        with ThreadPoolExecutor(3) as pool:
            for _ in range(3):
                pool.submit(keep_full)
            try:
                time.sleep(0.3)
                for _ in range(50):
                    kept = kept_alive_socket(srv.port)
                    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as new:
                        new.sendall(small)
                        kept.sendall(small)
                        answers["door"].append(read_answer(new))
                        answers["stack"].append(read_answer(kept))
                    kept.close()
                    if all(a[-1].startswith(b"HTTP/1.1 503") for a in answers.values()):
                        break
            finally:
                stop.set()
        door, stack = (parse_answer(a[-1]) for a in (answers["door"], answers["stack"]))
        assert door[0] == stack[0] == 503, (answers["door"][-1], answers["stack"][-1])
        ignore = {"date", "x-request-id"}
        assert {k: v for k, v in door[1].items() if k not in ignore} == {
            k: v for k, v in stack[1].items() if k not in ignore}
        assert door[2] == stack[2] and door[2]["details"]["reason"] == "queue"
    finally:
        srv.stop()


def parse_answer(answer: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, orjson.loads(body)
