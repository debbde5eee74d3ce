"""``create_app(config=None)``: the Flask application factory of the prediction service.

Configuration comes from environment variables (see ``config.Settings``); ``config`` keys
(Settings field names) override them, for tests. gunicorn calls ``create_app()`` once per
worker (see gunicorn.conf.py).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, request
from threadpoolctl import threadpool_limits
from werkzeug.routing import BaseConverter

from model.artifact import NAME_PATTERN

from . import ops, v1, v2
from .auth import BearerAuth, load_token
from .config import Settings
from .dataplane import DataPlane
from .errors import register_error_handlers
from .limits import Limits
from .logs import AccessLog, configure_logging
from .metrics import Metrics
from .registry import Registry

log = logging.getLogger("service.app")

#: Incoming X-Request-ID values we echo: printable ASCII without spaces, at most 128 chars.
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")


class ModelNameConverter(BaseConverter):
    """A model name as artifacts allow it (no ':' or '/', so ':predict' splits cleanly)."""

    regex = NAME_PATTERN.pattern.strip("^$")


class VersionConverter(BaseConverter):
    """A version segment; checked by the registry so a bad one is a clear 404."""

    regex = r"[^/:]{1,32}"


@dataclass(frozen=True)
class Service:
    """What one app instance holds: its settings, registry, data plane and metrics."""

    settings: Settings
    registry: Registry
    dataplane: DataPlane
    metrics: Metrics


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: load every model version, register routes, hooks and error handlers."""
    config = dict(config or {})
    token = config.pop("auth_token", None) or load_token()  # never kept in Settings
    settings = Settings.from_env(overrides=config)
    configure_logging(settings.log_level)
    # One BLAS thread per worker: results are bitwise reproducible and workers do not
    # fight over cores (gunicorn.conf.py also sets OPENBLAS_NUM_THREADS before import).
    threadpool_limits(settings.blas_threads)

    registry = Registry(settings.artifacts_dir, settings.reload_interval)
    registry.refresh()
    service = Service(settings, registry, DataPlane(registry), Metrics())

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["service"] = service
    app.url_map.converters["model"] = ModelNameConverter
    app.url_map.converters["version"] = VersionConverter
    app.register_blueprint(v1.make_blueprint(service.dataplane, settings.max_instances))
    app.register_blueprint(v2.make_blueprint(service.dataplane, settings.max_instances))
    app.register_blueprint(ops.make_blueprint(service.dataplane, service.metrics,
                                              settings.max_instances))
    register_error_handlers(app)
    guarded = Limits(app.wsgi_app, settings.max_body_bytes, settings.body_timeout,
                     settings.max_queue, settings.max_wait)
    if token:
        guarded = BearerAuth(guarded, token)
    app.wsgi_app = RequestObserver(guarded, service.metrics, AccessLog())

    @app.url_value_preprocessor
    def record_endpoint(endpoint: str | None, values: Any) -> None:
        if endpoint:
            request.environ["service.labels"][3] = endpoint

    log.info("service started", extra={"fields": {
        "artifacts_dir": str(settings.artifacts_dir),
        "models": {n: (m.latest.version if m.latest else None)
                   for n, m in registry.models.items()}}})
    return app


class RequestObserver:
    """WSGI middleware around the Flask app: request id in and out, then one metrics
    observation and one access-log line per request.

    Cheaper than Flask before/after_request hooks (no context-local lookups). Views record
    the model, version and instance count in ``environ["service.labels"]``.
    """

    def __init__(self, app: Any, metrics: Metrics, access: AccessLog) -> None:
        self.app = app
        self.metrics = metrics
        self.access = access

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        t0 = time.perf_counter()
        rid = environ.get("HTTP_X_REQUEST_ID")
        if not (rid and _REQUEST_ID.fullmatch(rid)):
            rid = os.urandom(16).hex()
        environ["service.request_id"] = rid
        # model, version, n_instances (set by views), endpoint (set once routing matched)
        labels = environ["service.labels"] = ["", "", 0, "unmatched"]
        statuses: list[str] = []

        def respond(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append(("X-Request-ID", rid))
            statuses.append(status)
            return start_response(status, headers, exc_info)

        result = self.app(environ, respond)
        seconds = time.perf_counter() - t0
        status = int(statuses[-1][:3]) if statuses else 500
        model, version, n, endpoint = labels
        if status >= 400:
            n = 0
        self.metrics.observe(endpoint, model, version, status, seconds, n)
        if self.access.enabled:
            self.access.write({
                "request_id": rid, "method": environ.get("REQUEST_METHOD"),
                "path": environ.get("PATH_INFO"), "status": status,
                "duration_ms": round(seconds * 1e3, 3), "model": model or None,
                "version": version or None, "n_instances": n})
        return result
