"""Service settings from environment variables, with defaults and clear errors for bad values.

Stdlib only: gunicorn.conf.py reads the same settings in the master process, before any
worker imports NumPy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """A setting has a value the service cannot run with; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Everything the app and gunicorn.conf.py read from the environment.

    Field names are the keys ``create_app(config)`` accepts; ``ENV`` names the variables.
    """

    artifacts_dir: Path = Path("artifacts")
    #: Largest request body accepted (413 beyond). 16 MiB holds ~1,500 MNIST rows as JSON.
    max_body_bytes: int = 16 * 1024 * 1024
    #: Most instances (rows) in one request (400 beyond).
    max_instances: int = 1024
    #: Most pixels (width x height) of a picture, checked from its header before decoding
    #: (decompression bombs); 413 beyond.
    max_image_pixels: int = 16_000_000
    log_level: str = "INFO"
    #: Seconds between checks of the artifacts folder for new, changed or removed versions;
    #: 0 turns polling off (then only a restart or gunicorn HUP picks up new versions).
    reload_interval: float = 2.0
    #: BLAS threads per worker. 1 keeps results bitwise reproducible and suits one
    #: single-threaded worker per core.
    blas_threads: int = 1
    port: int = 8000
    #: gunicorn workers; 0 means one per CPU core.
    workers: int = 0
    #: Seconds from connecting to a complete request line and headers (idle ones are closed),
    #: and from a kept-alive request's first bytes to its complete head.
    header_timeout: float = 5.0
    #: Seconds a kept-alive connection may idle between requests; 0: one request per
    #: connection. Above the idle timeout of any proxy that reuses connections to us.
    keepalive_timeout: float = 75.0
    #: Seconds a request body may take to arrive in full (408 beyond).
    body_timeout: float = 30.0
    #: Open connections a worker holds at most (idle, slow or busy); more wait in the backlog.
    max_connections: int = 2000
    #: Predictions waiting for a worker's CPU beyond which new ones get 503 at once.
    max_queue: int = 16
    #: Seconds a prediction may have waited for the CPU before it gets 503 instead.
    max_wait: float = 1.0
    #: A worker whose resident memory passes this many MiB restarts gracefully; 0 = no limit.
    max_worker_memory: int = 0
    #: The Open Inference Protocol over gRPC (``python -m service.grpc``, started beside
    #: gunicorn by gunicorn.conf.py); 0 serves HTTP only.
    grpc_port: int = 8001

    ENV = {
        "artifacts_dir": "SERVICE_ARTIFACTS_DIR",
        "max_body_bytes": "SERVICE_MAX_BODY_BYTES",
        "max_instances": "SERVICE_MAX_INSTANCES",
        "max_image_pixels": "SERVICE_MAX_IMAGE_PIXELS",
        "log_level": "SERVICE_LOG_LEVEL",
        "reload_interval": "SERVICE_RELOAD_INTERVAL",
        "blas_threads": "SERVICE_BLAS_THREADS",
        "port": "PORT",
        "workers": "WEB_CONCURRENCY",
        "header_timeout": "SERVICE_HEADER_TIMEOUT",
        "keepalive_timeout": "SERVICE_KEEPALIVE_TIMEOUT",
        "body_timeout": "SERVICE_BODY_TIMEOUT",
        "max_connections": "SERVICE_MAX_CONNECTIONS",
        "max_queue": "SERVICE_MAX_QUEUE",
        "max_wait": "SERVICE_MAX_WAIT",
        "max_worker_memory": "SERVICE_MAX_WORKER_MEMORY",
        "grpc_port": "GRPC_PORT",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None,
                 overrides: Mapping[str, Any] | None = None) -> Settings:
        """Settings from ``env`` (default os.environ), then ``overrides`` by field name."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, var in cls.ENV.items():
            if env.get(var, "").strip():
                values[name] = _PARSERS[name](env[var].strip(), var)
        known = {f.name for f in fields(cls)}
        for name, value in (overrides or {}).items():
            if name not in known:
                raise SettingsError(f"unknown setting {name!r}; known: {sorted(known)}")
            values[name] = _PARSERS[name](value, name) if isinstance(value, str) else value
        settings = replace(cls(), **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise SettingsError naming the first setting that is out of range."""
        def bad(name: str, want: str) -> SettingsError:
            return SettingsError(f"{self.ENV[name]} must be {want}, got {getattr(self, name)!r}")

        if not isinstance(self.max_body_bytes, int) or self.max_body_bytes < 1024:
            raise bad("max_body_bytes", "an integer >= 1024 (bytes)")
        if not isinstance(self.max_instances, int) or self.max_instances < 1:
            raise bad("max_instances", "a positive integer")
        if not isinstance(self.max_image_pixels, int) or self.max_image_pixels < 784:
            raise bad("max_image_pixels", "an integer >= 784 (28x28)")
        if self.log_level not in LOG_LEVELS:
            raise bad("log_level", f"one of {', '.join(LOG_LEVELS)}")
        if not isinstance(self.reload_interval, int | float) or not (
                0 <= self.reload_interval <= 86400):
            raise bad("reload_interval", "a number of seconds between 0 and 86400")
        if not isinstance(self.blas_threads, int) or not 1 <= self.blas_threads <= 256:
            raise bad("blas_threads", "an integer between 1 and 256")
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise bad("port", "a TCP port number (1-65535)")
        if not isinstance(self.workers, int) or not 0 <= self.workers <= 256:
            raise bad("workers", "an integer between 0 (one per core) and 256")
        for name in ("header_timeout", "body_timeout", "max_wait"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.1 <= value <= 3600:
                raise bad(name, "a number of seconds between 0.1 and 3600")
        if not isinstance(self.keepalive_timeout, int | float) or not (
                0 <= self.keepalive_timeout <= 3600):
            raise bad("keepalive_timeout", "a number of seconds between 0 (no keep-alive) "
                      "and 3600")
        if not isinstance(self.max_connections, int) or not 1 <= self.max_connections <= 100000:
            raise bad("max_connections", "an integer between 1 and 100000")
        if not isinstance(self.max_queue, int) or not 1 <= self.max_queue <= 100000:
            raise bad("max_queue", "an integer between 1 and 100000")
        if not isinstance(self.max_worker_memory, int) or self.max_worker_memory < 0:
            raise bad("max_worker_memory", "a whole number of MiB (0 = no limit)")
        if not isinstance(self.grpc_port, int) or not 0 <= self.grpc_port <= 65535:
            raise bad("grpc_port", "a TCP port number (1-65535), or 0 for no gRPC server")

    @property
    def worker_count(self) -> int:
        """gunicorn workers to start: ``workers`` or, if 0, one per CPU core."""
        return self.workers or os.cpu_count() or 1


def _int(value: str, var: str) -> int:
    try:
        return int(value.replace("_", ""))
    except ValueError:
        raise SettingsError(f"{var} must be an integer, got {value!r}") from None


def _float(value: str, var: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise SettingsError(f"{var} must be a number, got {value!r}") from None


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "artifacts_dir": lambda v, var: Path(v),
    "max_body_bytes": _int,
    "max_instances": _int,
    "max_image_pixels": _int,
    "log_level": lambda v, var: v.upper(),
    "reload_interval": _float,
    "blas_threads": _int,
    "port": _int,
    "workers": _int,
    "header_timeout": _float,
    "keepalive_timeout": _float,
    "body_timeout": _float,
    "max_connections": _int,
    "max_queue": _int,
    "max_wait": _float,
    "max_worker_memory": _int,
    "grpc_port": _int,
}
