"""Run ``python -m service.grpc`` beside gunicorn as one unit (stdlib only: imported by the
gunicorn master through gunicorn.conf.py, before any worker imports NumPy or grpcio).

The master starts it once ready, forwards SIGHUP (rescan the models) and stops it
gracefully on exit; should it die on its own, the master is told to stop too, so a
container or supervisor restarts both rather than serve HTTP alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading


class GrpcProcess:
    """The gRPC server process started for one gunicorn master."""

    def __init__(self, host: str, port: int) -> None:
        self.stopping = False
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.grpc", "--bind", f"{host}:{port}"])
        threading.Thread(target=self._watch, name="grpc-watch", daemon=True).start()

    def _watch(self) -> None:
        """Stop the master (SIGTERM: graceful) if the gRPC process exits unasked."""
        self.proc.wait()
        if not self.stopping:
            os.kill(os.getpid(), signal.SIGTERM)

    def reload(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout: float) -> None:
        """SIGTERM, then wait ``timeout`` seconds for in-flight calls before SIGKILL."""
        self.stopping = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def host_of(bind: str) -> str:
    """The host of a gunicorn bind address ('127.0.0.1:8000' -> '127.0.0.1'); all interfaces
    for a port alone or a unix socket."""
    if bind.startswith(("unix:", "fd://")) or ":" not in bind:
        return "0.0.0.0"
    return bind.rsplit(":", 1)[0] or "0.0.0.0"
