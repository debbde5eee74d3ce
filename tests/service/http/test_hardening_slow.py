"""Slow and idle clients cannot starve the service (real gunicorn, short bounded version).

bench/robustness.py runs the same with 1,000 connections for longer.
"""

from __future__ import annotations

import time

import orjson
import pytest

from tests.factories import make_classifier, make_regressor, random_images
from tests.service.gunicorn_server import Server
from tests.service.http.slow_clients import Probe, SlowClients

HEADER_TIMEOUT = 2
BODY_TIMEOUT = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slow")
    artifacts = workdir / "artifacts"
    make_regressor(artifacts)
    make_classifier(artifacts)
    # SERVICE_MAX_WAIT well above the default 1 s: on a shared machine both workers were
    # seen descheduled for 1.4 s, and the requests that arrived meanwhile were rightly shed
    # (503); shedding is test_hardening_overload's subject, not this module's.
    srv = Server(artifacts, workdir, env={"SERVICE_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
                                          "SERVICE_BODY_TIMEOUT": str(BODY_TIMEOUT),
                                          "SERVICE_MAX_WAIT": "30"})
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def test_slow_and_idle_connections_do_not_starve_polite_clients(server):
    body = orjson.dumps({"instances": random_images(1).tolist()})
    with SlowClients(server.port, count=150, interval=0.5) as slow:
        probe = Probe(server.url, body, seconds=HEADER_TIMEOUT + 0.5).run()
        assert slow.open_count > 0 or probe.latencies, "slow clients never held anything"
        # every slow connection is answered or closed within its limit (+ scheduling slack)
        deadline = time.monotonic() + BODY_TIMEOUT + 5
        while slow.open_count and time.monotonic() < deadline:
            time.sleep(0.1)
    assert not probe.failures, probe.failures[:5]
    assert len(probe.latencies) >= 10
    assert probe.percentile(99) <= 1.0, probe.percentile(99)
    assert slow.open_count == 0
    for out in slow.outcomes:
        held = out.ended - out.opened
        if out.kind == "body":
            assert out.answer.startswith(b"HTTP/1.1 408"), out.answer[:100]
            assert b'"error"' in out.answer
            assert BODY_TIMEOUT - 0.5 <= held <= BODY_TIMEOUT + 4, held
        elif out.kind == "header":  # part of a head: 408 and closed
            assert out.answer.startswith(b"HTTP/1.1 408"), out.answer[:100]
            assert b"SERVICE_HEADER_TIMEOUT" in out.answer, out.answer
            assert HEADER_TIMEOUT - 0.5 <= held <= HEADER_TIMEOUT + 4, held
        else:  # nothing at all: closed without an answer
            assert out.answer == b"", (out.kind, out.answer[:100])
            assert HEADER_TIMEOUT - 0.5 <= held <= HEADER_TIMEOUT + 4, (out.kind, held)
