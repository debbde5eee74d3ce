"""``python -m service.grpc`` as a process: SIGHUP rescans the models, SIGTERM stops it
with status 0, bad settings and a taken port stop it with a message."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from tests.factories import make_regressor
from tests.service.grpc.grpc_server import GrpcServer
from tests.service.gunicorn_server import ROOT


def test_sighup_rescans_and_sigterm_stops(tmp_path):
    artifacts = tmp_path / "artifacts"
    make_regressor(artifacts)
    srv = GrpcServer(artifacts, tmp_path, {"SERVICE_RELOAD_INTERVAL": "0"})   # no polling
    try:
        assert srv.client.get_model_metadata("housing").versions == ["1"]
        make_regressor(artifacts, seed=5)                                      # version 2
        time.sleep(0.5)
        assert srv.client.get_model_metadata("housing").versions == ["1"]
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while srv.client.get_model_metadata("housing").versions != ["1", "2"]:
            assert time.monotonic() < deadline, "SIGHUP did not load version 2"
            time.sleep(0.1)
    finally:
        assert srv.stop() == 0
    assert "grpc service stopping" in srv.log.read_text()


def run_main(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.grpc", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60)


def test_bad_settings_and_taken_port(tmp_path):
    bad = run_main({"GRPC_PORT": "grpc"})
    assert bad.returncode == 2 and "GRPC_PORT must be an integer" in bad.stderr
    make_regressor(tmp_path / "artifacts")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_main({"SERVICE_ARTIFACTS_DIR": str(tmp_path / "artifacts")},
                        "--bind", f"127.0.0.1:{port}")
    assert busy.returncode == 1 and "cannot listen" in busy.stdout
