"""gunicorn's own log lines (start-up, worker exits) as JSON, like every other line; the
request log and formatter are the core's (``service.core.logs``), shared with gRPC."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from ..core.logs import JsonFormatter


class GunicornLogger(Logger):
    """gunicorn's logger with our JSON formatter on every handler it sets up."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())
