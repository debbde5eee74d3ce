"""Hostile clients over raw sockets for the robustness tests and bench/robustness.py.

``SlowClients`` holds connections open that trickle a request head, trickle a body, or say
nothing; ``Probe`` is a polite client that measures latency meanwhile. Everything is bounded
in count and time and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

import requests

HEAD = (b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n")
KINDS = ("header", "body", "idle")


@dataclass
class Outcome:
    """What happened to one slow connection: the server's first bytes, or a close."""

    kind: str
    opened: float
    ended: float | None = None
    answer: bytes = b""


class SlowClients:
    """``count`` connections to ``port``, cycling through KINDS, each sending one more byte
    or header line every ``interval`` seconds until the server answers or closes it; with
    ``reconnect`` each one ended is replaced, so ``count`` stay open until the exit."""

    def __init__(self, port: int, count: int, interval: float = 1.0,
                 reconnect: bool = False) -> None:
        self.port = port
        self.count = count
        self.interval = interval
        self.reconnect = reconnect
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.opened = threading.Event()

    def __enter__(self) -> SlowClients:
        self._thread.start()
        if not self.opened.wait(60):
            raise RuntimeError("slow clients did not connect within 60 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    @property
    def open_count(self) -> int:
        return sum(o.ended is None for o in self.outcomes)

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        socks: dict[socket.socket, Outcome] = {}
        def open_one(kind: str) -> None:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            if kind == "header":
                s.sendall(HEAD)
            elif kind == "body":
                s.sendall(HEAD + b"Content-Length: 100000\r\n\r\n{")
            s.setblocking(False)
            out = Outcome(kind, time.monotonic())
            self.outcomes.append(out)
            socks[s] = out
            sel.register(s, selectors.EVENT_READ, out)

        try:
            for i in range(self.count):
                open_one(KINDS[i % len(KINDS)])
            self.opened.set()
            next_tick = time.monotonic() + self.interval
            while socks and not self._stop.is_set():
                for key, _ in sel.select(timeout=max(0.0, next_tick - time.monotonic())):
                    self._finish(sel, socks, key.fileobj, key.data)
                    if self.reconnect and not self._stop.is_set():
                        open_one(key.data.kind)
                if time.monotonic() >= next_tick:
                    next_tick += self.interval
                    for s, out in list(socks.items()):
                        data = {"header": b"X-Slow: 1\r\n", "body": b" "}.get(out.kind)
                        if data:
                            try:
                                s.send(data)
                            except OSError:
                                self._finish(sel, socks, s, out)
        finally:
            self.opened.set()
            for s in socks:
                s.close()
            sel.close()

    @staticmethod
    def _finish(sel: selectors.BaseSelector, socks: dict, s: socket.socket,
                out: Outcome) -> None:
        out.ended = time.monotonic()
        chunks = []
        try:
            s.settimeout(1.0)
            while sum(map(len, chunks)) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError:
            pass
        out.answer = b"".join(chunks)
        sel.unregister(s)
        socks.pop(s)
        s.close()


@dataclass
class Probe:
    """Polite clients: ``threads`` loops of health check + one-row prediction, new
    connection each time (like a kubelet probe), for ``seconds``."""

    url: str
    body: bytes
    seconds: float
    threads: int = 2
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def run(self) -> Probe:
        deadline = time.monotonic() + self.seconds
        lock = threading.Lock()

        def loop() -> None:
            while time.monotonic() < deadline:
                for method, path, data in (("GET", "/v2/health/ready", None),
                                           ("POST", "/v1/models/mnist:predict", self.body)):
                    t0 = time.monotonic()
                    try:
                        resp = requests.request(
                            method, self.url + path, data=data, timeout=5,
                            headers={"Content-Type": "application/json"})
                        ok = resp.status_code == 200
                        why = f"{path}: {resp.status_code}"
                    except requests.RequestException as exc:
                        ok, why = False, f"{path}: {type(exc).__name__}"
                    with lock:
                        self.latencies.append(time.monotonic() - t0)
                        if not ok:
                            self.failures.append(why)

        workers = [threading.Thread(target=loop) for _ in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=self.seconds + 30)
        return self

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else 0.0


def worker_pids(master: int) -> list[int]:
    """The gunicorn master's child processes (Linux /proc)."""
    try:
        with open(f"/proc/{master}/task/{master}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def fd_limit_ok(needed: int) -> bool:
    """Whether this process may open ``needed`` more file descriptors."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft == resource.RLIM_INFINITY or soft > needed + len(os.listdir("/proc/self/fd"))
