"""Prometheus metrics: request counts and latency per endpoint, model, version and status;
``RequestRecord`` is what a front end notes about one request while answering it.

Under gunicorn (``PROMETHEUS_MULTIPROC_DIR`` set by gunicorn.conf.py before workers import
prometheus_client) every worker writes to shared files and ``/metrics`` sums them, so any
worker answers for the whole server. Without it (tests, a single process) the app's own
registry is exposed.
"""

from __future__ import annotations

import os
import re

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _generate

#: Latency buckets (seconds): fine below 10 ms, where single-row requests live.
BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
           1.0, 2.5, 5.0, 10.0)


#: Incoming request ids we echo (X-Request-ID, x-request-id metadata): printable ASCII
#: without spaces, at most 128 chars.
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")


def request_id(incoming: str | None) -> str:
    """The client's request id if it is acceptable, else a new random one."""
    return incoming if incoming and _REQUEST_ID.fullmatch(incoming) else os.urandom(16).hex()


class RequestRecord:
    """What one request was about, filled in while it is answered: the endpoint (set once
    routing matched), the model and version it addressed, how many instances it carried."""

    __slots__ = ("endpoint", "model", "version", "instances")

    def __init__(self) -> None:
        self.endpoint = "unmatched"
        self.model = ""
        self.version = ""
        self.instances = 0


class RequestMetrics:
    """The service's request metrics; ``observe`` is the one per-request call."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["endpoint", "model", "version", "status"]
        self.requests = Counter("model_server_requests", "HTTP requests answered.", labels,
                                registry=self.registry)
        self.latency = Histogram("model_server_request_duration_seconds",
                                 "Time to answer a request, in seconds.", labels,
                                 buckets=BUCKETS, registry=self.registry)
        self.instances = Counter("model_server_instances", "Instances (rows) predicted.",
                                 ["model", "version"], registry=self.registry)
        self._children: dict[tuple[str, str, str, str], tuple] = {}
        self._rows: dict[tuple[str, str], object] = {}

    @property
    def multiprocess_dir(self) -> str | None:
        return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None

    def observe(self, endpoint: str, model: str, version: str, status: int,
                seconds: float, instances: int = 0) -> None:
        """Count one answered request (cached label children keep this a few µs)."""
        key = (endpoint, model, version, str(status))
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(*key), self.latency.labels(*key))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if instances:
            rows = self._rows.get((model, version))
            if rows is None:
                rows = self._rows[(model, version)] = self.instances.labels(model, version)
            rows.inc(instances)  # type: ignore[attr-defined]

    def exposition(self) -> bytes:
        """Prometheus text for the whole server (all gunicorn workers when multiprocess)."""
        directory = self.multiprocess_dir
        if directory:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)
            return _generate(registry)
        return _generate(self.registry)
