"""deploy/healthcheck.py (the container's HEALTHCHECK) against a real gunicorn serving HTTP
and gRPC: healthy only when both answer, HTTP alone enough with GRPC_PORT=0."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.factories import make_classifier
from tests.service.gunicorn_server import ROOT, free_port, running, wait_listening


def healthcheck(http_port: int, grpc_port: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "deploy/healthcheck.py"], cwd=ROOT,
                          env={**os.environ, "PORT": str(http_port),
                               "GRPC_PORT": str(grpc_port)},
                          capture_output=True, text=True, timeout=60)


def test_healthy_only_when_both_protocols_answer(tmp_path):
    make_classifier(tmp_path / "artifacts")
    grpc_port = free_port()
    with running(tmp_path / "artifacts", tmp_path, env={"GRPC_PORT": str(grpc_port)}) as srv:
        wait_listening(grpc_port)
        both = healthcheck(srv.port, grpc_port)
        assert both.returncode == 0, both.stderr
        nobody = free_port()
        no_grpc = healthcheck(srv.port, nobody)
        assert no_grpc.returncode == 1
        assert f"unhealthy: grpc 127.0.0.1:{nobody}: UNAVAILABLE" in no_grpc.stderr
        assert healthcheck(srv.port, 0).returncode == 0
        no_http = healthcheck(nobody, grpc_port)
        assert no_http.returncode == 1 and "/v2/health/ready" in no_http.stderr
