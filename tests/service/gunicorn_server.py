"""A real gunicorn serving an artifacts folder on 127.0.0.1, for end-to-end test modules."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import orjson
import requests
from threadpoolctl import threadpool_limits

from model import Predictor

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 60
RELOAD_INTERVAL = 0.2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float = STARTUP_TIMEOUT) -> None:
    """Return once something accepts connections on 127.0.0.1:``port`` (the gRPC process
    listens only after loading its models)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


class Server:
    """A gunicorn process serving ``artifacts``; stopped by its own pid.

    ``command`` replaces the usual gunicorn arguments (after ``python -m gunicorn``); the
    server is bound to 127.0.0.1 either way.
    """

    def __init__(self, artifacts: Path, workdir: Path, port: int | None = None,
                 env: dict[str, str] | None = None, command: list[str] | None = None) -> None:
        self.artifacts = artifacts
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "server.log"
        env = {**os.environ, "SERVICE_ARTIFACTS_DIR": str(artifacts), "WEB_CONCURRENCY": "2",
               "SERVICE_RELOAD_INTERVAL": str(RELOAD_INTERVAL), "SERVICE_LOG_LEVEL": "INFO",
               "SERVICE_MAX_BODY_BYTES": str(1 << 20),
               "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"), "GRPC_PORT": "0",
               **(env or {})}
        args = command or ["-c", "service/gunicorn.conf.py", "service.app:create_app()"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", *args, "--bind", f"127.0.0.1:{self.port}"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log.read_text()[-3000:]}")
            try:
                if requests.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or a worker still loading on a busy machine
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn not ready in {STARTUP_TIMEOUT}s:\n"
                           f"{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def access_lines(self) -> list[dict]:
        lines = []
        for line in self.log.read_text().splitlines():
            if '"service.access"' in line:
                lines.append(orjson.loads(line))
        return lines


@contextmanager
def running(artifacts: Path, workdir: Path, **kwargs) -> Iterator[Server]:
    """A ready Server (``Server``'s keyword arguments), stopped on leaving."""
    srv = Server(artifacts, workdir, **kwargs)
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def reference(path: Path, x: np.ndarray) -> np.ndarray:
    """The in-process Predictor's answer with the service's one BLAS thread."""
    with threadpool_limits(1):
        return Predictor.from_artifact(path).predict(x)
