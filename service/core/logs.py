"""Structured logs: one JSON object per line on stdout, one line per request.

Fields a log call passes as ``extra={"fields": {...}}`` become top-level keys, so the
request log carries ts, level, request_id, method, path, status, duration_ms, model,
version and n_instances, whichever front end (HTTP or gRPC) answered.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

ACCESS = logging.getLogger("service.access")


class AccessLog:
    """The per-request line, written straight to stdout with one ``os.write``.

    Same format as JsonFormatter lines, at a quarter of the logging module's cost (~5 µs
    rather than ~22 µs), and unbuffered so no line is lost when a worker is killed.
    Enabled when the ``service.access`` logger is enabled for INFO.
    """

    def __init__(self, fd: int | None = None) -> None:
        if fd is None:
            try:
                fd = sys.stdout.fileno()
            except (AttributeError, OSError, ValueError):  # stdout replaced (e.g. captured)
                fd = 1
        self.fd = fd

    @property
    def enabled(self) -> bool:
        return ACCESS.isEnabledFor(logging.INFO)

    def write(self, fields: dict[str, Any]) -> None:
        line = orjson.dumps({
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "level": "INFO",
            "logger": "service.access", "pid": os.getpid(), "message": "request", **fields,
        }, default=str) + b"\n"
        while line:
            written = os.write(self.fd, line)
            line = line[written:]


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line; tracebacks go in a ``traceback`` field."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure_logging(level: str) -> None:
    """Send the service's loggers to stdout as JSON lines at ``level`` (idempotent)."""
    logger = logging.getLogger("service")
    for handler in list(logger.handlers):
        if getattr(handler, "_service_json", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler._service_json = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
