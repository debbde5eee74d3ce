"""Stops, crashes and memory limits under load, against real gunicorn on 127.0.0.1.

Each test starts its own server (it stops or breaks it) and bounds every wait.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import requests

from model import Dense, Flatten, ReLU, Sequential
from service.http.worker import STOP_LINGER
from tests.factories import make_classifier, random_images
from tests.service.gunicorn_server import Server
from tests.service.http.slow_clients import rss_kib, worker_pids

PREDICT = "/v1/models/mnist:predict"
JSON = {"Content-Type": "application/json"}


def slow_model(root):
    """A classifier slow enough that requests queue on any machine: ~0.2 s for 512 rows on
    one quiet core (two 2048-wide layers; 1024 was fast enough on a quiet machine that all
    twelve SIGTERM-test requests finished before the signal)."""
    net = Sequential([Flatten(), Dense(2048), ReLU(), Dense(2048), ReLU(), Dense(10)],
                     input_shape=(28, 28))
    make_classifier(root, network=net.build(seed=0))
    return root


@pytest.fixture
def start(tmp_path):
    servers: list[Server] = []

    def run(**env: str) -> Server:
        srv = Server(slow_model(tmp_path / "artifacts"), tmp_path,
                     env={"SERVICE_MAX_BODY_BYTES": str(16 << 20), "SERVICE_MAX_WAIT": "60",
                          **env})
        servers.append(srv)
        srv.wait_ready()
        return srv

    yield run
    for srv in servers:
        srv.stop()


def post(url: str, body: bytes, timeout: float = 60) -> str:
    """Status code as text, or the name of the error (one new connection per request)."""
    try:
        return str(requests.post(url + PREDICT, data=body, timeout=timeout,
                                 headers={"Content-Type": "application/json"}).status_code)
    except requests.RequestException as exc:
        return type(exc).__name__


def test_sigterm_answers_every_request_that_reached_the_server(start):
    srv = start()
    body = orjson.dumps({"instances": random_images(512).tolist()})
    with ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(post, srv.url, body) for _ in range(12)]
        # all twelve are sent: some computing, the rest accepted or in the listen backlog
        time.sleep(1.0)
        assert not all(f.done() for f in futures), "requests finished before the signal"
        signalled = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        # a worker acts on the signal once the computation it is in ends; from then on
        # new connections are refused, and one that got in before is answered, not reset
        late = [pool.submit(post, srv.url, body) for _ in range(2)]
        refused_after = None
        while time.monotonic() - signalled < 20:
            try:
                socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
            except ConnectionRefusedError:
                refused_after = time.monotonic() - signalled
                break
            time.sleep(0.05)
        codes = [f.result(timeout=60) for f in futures]
        late_codes = [f.result(timeout=60) for f in late]
    assert codes == ["200"] * 12, codes
    assert refused_after is not None
    assert set(late_codes) <= {"200", "ConnectionError"}, late_codes
    srv.proc.wait(timeout=35)
    assert time.monotonic() - signalled < 30 + 5  # gunicorn's graceful_timeout
    assert srv.proc.returncode == 0


def test_sigterm_closes_idle_kept_alive_connections_and_answers_late_ones(start):
    """Kept-alive connections do not hold a stop for their idle timeout (75 s): one that
    sends within STOP_LINGER of the signal is answered and closed, one still idle then is
    closed; the server exits within seconds."""
    srv = start()
    body = orjson.dumps({"instances": random_images(1).tolist()})
    idle, late = (http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
                  for _ in range(2))
    try:
        for conn in (idle, late):
            for _ in range(20):  # an answer slower than SLOW_ANSWER (a busy machine) closes
                conn.request("GET", "/v2/health/live")
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200
                if resp.getheader("Connection") == "keep-alive":
                    break
            assert resp.getheader("Connection") == "keep-alive"
        # an answer slower than SLOW_ANSWER closes its connection (the next request goes
        # to whichever worker is free): 256 rows of this model take ~0.1 s
        resp = requests.post(srv.url + PREDICT, headers=JSON, timeout=20,
                             data=orjson.dumps({"instances": random_images(256).tolist()}))
        assert (resp.status_code, resp.headers["Connection"]) == (200, "close")
        signalled = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(STOP_LINGER / 2)
        late.request("POST", PREDICT, body=body, headers=JSON)
        resp = late.getresponse()
        assert resp.status == 200
        resp.read()
        idle.sock.settimeout(STOP_LINGER + 10)
        assert idle.sock.recv(1) == b""  # closed by the server, nothing half-sent
        closed_after = time.monotonic() - signalled
        srv.proc.wait(timeout=STOP_LINGER + 10)
    finally:
        idle.close()
        late.close()
    assert STOP_LINGER - 0.3 <= closed_after <= STOP_LINGER + 5, closed_after
    assert time.monotonic() - signalled < STOP_LINGER + 10
    assert srv.proc.returncode == 0


def test_killed_worker_is_replaced_and_only_its_requests_can_fail(start):
    srv = start()
    body = orjson.dumps({"instances": random_images(1).tolist()})
    stop = threading.Event()
    results: list[str] = []
    ready: list[str] = []

    def client() -> None:
        while not stop.is_set():
            results.append(post(srv.url, body, timeout=10))

    def prober() -> None:
        while not stop.is_set():
            try:
                ready.append(str(requests.get(srv.url + "/v2/health/ready",
                                              timeout=5).status_code))
            except requests.RequestException as exc:
                ready.append(type(exc).__name__)
            time.sleep(0.05)

    threads = [threading.Thread(target=client) for _ in range(6)] + [
        threading.Thread(target=prober)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        before = worker_pids(srv.proc.pid)
        assert len(before) == 2
        os.kill(before[0], signal.SIGKILL)
        killed_at = time.monotonic()
        replaced = None
        while time.monotonic() - killed_at < 10:
            now = worker_pids(srv.proc.pid)
            if len(now) == 2 and before[0] not in now:
                replaced = time.monotonic() - killed_at
                break
            time.sleep(0.05)
        served_before = len(results)
        answered = None  # seconds from the kill until the new worker's first answer
        while replaced is not None and time.monotonic() - killed_at < 15:
            new = set(worker_pids(srv.proc.pid)) - set(before)
            if new & {line["pid"] for line in srv.access_lines() if line["path"] == PREDICT}:
                answered = time.monotonic() - killed_at
                break
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert replaced is not None and replaced < 5, replaced
    assert len(results) > served_before  # still serving after the replacement
    failures = [r for r in results if r != "200"]
    assert len(failures) <= 6, failures  # at most the requests in flight on that worker
    assert ready.count("200") >= len(ready) - 1, ready  # ready throughout (one probe may die)
    assert answered is not None and answered < 10, "the new worker never answered"


def test_worker_over_its_memory_limit_restarts_without_failing_requests(start):
    probe = start(SERVICE_LOG_LEVEL="WARNING")
    idle_mib = max(rss_kib(p) for p in worker_pids(probe.proc.pid)) // 1024
    probe.stop()
    # a limit the workers pass as soon as they serve: each restarts about every second
    srv = start(SERVICE_MAX_WORKER_MEMORY=str(max(1, idle_mib - 5)))
    body = orjson.dumps({"instances": random_images(64).tolist()})
    seen: set[int] = set(worker_pids(srv.proc.pid))
    with ThreadPoolExecutor(4) as pool:
        deadline = time.monotonic() + 5
        codes: list[str] = []
        while time.monotonic() < deadline:
            codes += pool.map(lambda _: post(srv.url, body, timeout=30), range(8))
            seen |= set(worker_pids(srv.proc.pid))
    assert codes and set(codes) == {"200"}, {c: codes.count(c) for c in set(codes)}
    assert len(seen) >= 4, seen  # both first workers were replaced at least once
    log = srv.log.read_text()
    assert "over SERVICE_MAX_WORKER_MEMORY" in log


def test_readiness_fails_while_no_worker_can_answer(start):
    srv = start()
    pids = worker_pids(srv.proc.pid)
    assert len(pids) == 2
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)  # both stuck: nothing can serve
    try:
        with pytest.raises(requests.Timeout):
            requests.get(srv.url + "/v2/health/ready", timeout=1)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert requests.get(srv.url + "/v2/health/ready", timeout=10).status_code == 200
