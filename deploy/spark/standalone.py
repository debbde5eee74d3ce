"""A throw-away Spark standalone cluster on 127.0.0.1 - a master and N one-core workers -
started with the pyspark package's own launcher (sbin/spark-daemon.sh), its logs, PIDs and
work folders in one given folder, stopped by its PIDs. For the cluster test and the
benchmark; real clusters are set up as docs/SPARK.md says."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import zipfile
from pathlib import Path

import requests

MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def project_zip(path: Path, root: Path) -> Path:
    """``model/`` and ``service/`` of the checkout at ``root`` as ``--py-files`` takes them
    (sources only), as a user ships the project."""
    with zipfile.ZipFile(path, "w") as z:
        for package in ("model", "service"):
            for file in sorted((root / package).rglob("*.py")):
                z.write(file, file.relative_to(root).as_posix())
    return path


class StandaloneCluster:
    """``with StandaloneCluster(folder, workers=2) as cluster: ... cluster.master_url``."""

    def __init__(self, folder: Path, workers: int = 2, memory: str = "1g",
                 timeout: float = 180.0) -> None:
        self.folder, self.workers, self.memory, self.timeout = folder, workers, memory, timeout
        self.port, self.ui_port = free_port(), free_port()
        self.master_url = f"spark://127.0.0.1:{self.port}"
        self.env = {**os.environ, "SPARK_HOME": str(spark_home()),
                    "SPARK_MASTER_HOST": "127.0.0.1", "SPARK_LOCAL_IP": "127.0.0.1",
                    "SPARK_LOG_DIR": str(folder / "logs"), "SPARK_PID_DIR": str(folder / "pids"),
                    "SPARK_WORKER_DIR": str(folder / "work"), "SPARK_IDENT_STRING": "test"}

    def _daemon(self, cls: str, instance: int, *args: str) -> None:
        subprocess.run(["bash", str(spark_home() / "sbin" / "spark-daemon.sh"), "start", cls,
                        str(instance), *args], env=self.env, check=True, timeout=60,
                       capture_output=True)

    def start(self) -> StandaloneCluster:
        self._daemon(MASTER, 1, "--host", "127.0.0.1", "--port", str(self.port),
                     "--webui-port", str(self.ui_port))
        for i in range(1, self.workers + 1):
            self._daemon(WORKER, i, "--host", "127.0.0.1", "--webui-port", str(free_port()),
                         "--cores", "1", "--memory", self.memory, self.master_url)
        deadline = time.monotonic() + self.timeout
        while self.alive_workers() < self.workers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.workers} workers did not register in "
                                   f"{self.timeout:.0f} s; logs in {self.folder / 'logs'}")
            time.sleep(1)
        return self

    def alive_workers(self) -> int:
        try:
            state = requests.get(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5).json()
        except (requests.RequestException, ValueError):
            return 0
        return int(state.get("aliveworkers", 0))

    def pids(self) -> list[int]:
        folder = self.folder / "pids"
        return [int(p.read_text()) for p in sorted(folder.glob("*.pid"))] \
            if folder.is_dir() else []

    def stop(self) -> None:
        """SIGTERM every daemon by its PID, SIGKILL those still there after 20 s."""
        pids = self.pids()
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while [p for p in pids if _running(p)] and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in pids:
            _signal(pid, signal.SIGKILL)

    def __enter__(self) -> StandaloneCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
