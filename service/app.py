"""``create_app(config=None)``: the Flask application factory of the prediction service.

Configuration comes from environment variables (see ``config.Settings``); ``config`` keys
(Settings field names) override them, for tests. gunicorn calls ``create_app()`` once per
worker (see gunicorn.conf.py).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g, request
from threadpoolctl import threadpool_limits
from werkzeug.routing import BaseConverter

from model.artifact import NAME_PATTERN

from . import ops, v1, v2
from .config import Settings
from .dataplane import DataPlane
from .errors import register_error_handlers
from .logs import ACCESS, configure_logging
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
    _install_request_hooks(app, service.metrics)
    log.info("service started", extra={"fields": {
        "artifacts_dir": str(settings.artifacts_dir),
        "models": {n: (m.latest.version if m.latest else None)
                   for n, m in registry.models.items()}}})
    return app


def _install_request_hooks(app: Flask, metrics: Metrics) -> None:
    """Request id in and out, then one metrics observation and one log line per request."""
    perf = time.perf_counter

    @app.before_request
    def start() -> None:
        g.t0 = perf()
        rid = request.headers.get("X-Request-ID")
        g.request_id = rid if rid and _REQUEST_ID.fullmatch(rid) else uuid.uuid4().hex

    @app.after_request
    def finish(response: Response) -> Response:
        seconds = perf() - g.get("t0", perf())
        rid = g.get("request_id") or uuid.uuid4().hex
        response.headers["X-Request-ID"] = rid
        model, version = g.get("model", ""), g.get("version", "")
        n = g.get("n_instances", 0) if response.status_code < 400 else 0
        metrics.observe(request.endpoint or "unmatched", model, version,
                        response.status_code, seconds, n)
        if ACCESS.isEnabledFor(logging.INFO):
            ACCESS.info("request", extra={"fields": {
                "request_id": rid, "method": request.method, "path": request.path,
                "status": response.status_code, "duration_ms": round(seconds * 1e3, 3),
                "model": model or None, "version": version or None, "n_instances": n}})
        return response
