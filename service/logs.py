"""Structured logs: one JSON object per line on stdout, one line per request.

Fields a log call passes as ``extra={"fields": {...}}`` become top-level keys, so the
request log carries ts, level, request_id, method, path, status, duration_ms, model,
version and n_instances.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

ACCESS = logging.getLogger("service.access")


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line; tracebacks go in a ``traceback`` field."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
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
