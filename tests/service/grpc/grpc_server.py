"""gRPC test helpers: wait for a server, call it, read its errors (tritonclient only: the
test process never imports the service's own stubs, which would clash in protobuf's pool
with the ones tritonclient registers under the same package)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import tritonclient.grpc as tg
from tritonclient.utils import InferenceServerException

from tests.service.gunicorn_server import ROOT, STARTUP_TIMEOUT, free_port


def wait_live(client: tg.InferenceServerClient, proc: subprocess.Popen, log: Path) -> None:
    """Return once ``client``'s server answers ServerLive; RuntimeError if it never does."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if client.is_server_live():
                return
        except InferenceServerException:
            pass  # not listening yet
        time.sleep(0.1)
    raise RuntimeError(f"gRPC not live in {STARTUP_TIMEOUT}s:\n{log.read_text()[-3000:]}")


def code_of(call) -> tuple[str, str]:
    """(status code name, message) of a call that must fail."""
    try:
        call()
    except InferenceServerException as exc:
        return str(exc.status()).removeprefix("StatusCode."), exc.message()
    raise AssertionError("the call succeeded")


class GrpcServer:
    """``python -m service.grpc`` alone on 127.0.0.1 over ``artifacts``; stopped by pid."""

    def __init__(self, artifacts: Path, workdir: Path, env: dict[str, str] | None = None,
                 ) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = workdir / "grpc.log"
        env = {**os.environ, "SERVICE_ARTIFACTS_DIR": str(artifacts),
               "SERVICE_LOG_LEVEL": "INFO", **(env or {})}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service.grpc", "--bind", self.address],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.client = tg.InferenceServerClient(self.address)
        wait_live(self.client, self.proc, self.log)

    def stop(self) -> int:
        """SIGTERM and the exit status."""
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=5)
