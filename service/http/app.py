"""``create_app(config=None)``: the Flask application factory, the HTTP front end over the
serving core.

Configuration comes from environment variables (see ``service.config.Settings``);
``config`` keys (Settings field names) override them, for tests. gunicorn calls
``create_app()`` once per worker (see gunicorn.conf.py, through ``service.app``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, request
from threadpoolctl import threadpool_limits

from ..config import Settings
from ..core.auth import load_token
from ..core.dataplane import DataPlane
from ..core.logs import AccessLog, configure_logging
from ..core.metrics import RequestMetrics
from ..core.registry import Registry
from . import ops, page, v1, v2
from .auth import BearerAuth
from .door import Door
from .errors import register_error_handlers
from .lane import ModelLane
from .limits import Limits
from .observer import RequestObserver
from .routing import ModelNameConverter, VersionConverter

log = logging.getLogger("service.app")

@dataclass(frozen=True)
class Service:
    """What one app instance holds: its settings, registry, data plane and metrics."""

    settings: Settings
    registry: Registry
    dataplane: DataPlane
    metrics: RequestMetrics


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
    # predictions compute through the lane: bounded wait, long ones off the event loop
    lane = ModelLane(settings.max_queue, settings.max_wait)
    service = Service(settings, registry,
                      DataPlane(registry, settings.max_instances, lane.run), RequestMetrics())

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["service"] = service
    app.url_map.converters["model"] = ModelNameConverter
    app.url_map.converters["version"] = VersionConverter
    app.register_blueprint(v1.make_blueprint(service.dataplane, page.index,
                                            max_image_pixels=settings.max_image_pixels))
    app.register_blueprint(v2.make_blueprint(service.dataplane,
                                            max_image_pixels=settings.max_image_pixels))
    app.register_blueprint(ops.make_blueprint(service.dataplane, service.metrics))
    register_error_handlers(app)
    # Outside in: observe (id, metrics, access log), authenticate, then bound the wait and
    # the body before Flask sees the request.
    guarded = Limits(app.wsgi_app, settings.max_body_bytes, settings.body_timeout, lane)
    if token:
        guarded = BearerAuth(guarded, token)
    access = AccessLog()
    app.wsgi_app = RequestObserver(guarded, service.metrics, access)
    # the same 503 for a new connection while the lane is full, before all of the above
    # (read by service/http/worker.py)
    app.extensions["service.door"] = Door(lane, service.metrics, access,
                                          settings.max_body_bytes, settings.body_timeout,
                                          token)

    @app.url_value_preprocessor
    def record_endpoint(endpoint: str | None, values: Any) -> None:
        if endpoint:
            request.environ["service.record"].endpoint = endpoint

    log.info("service started", extra={"fields": {
        "artifacts_dir": str(settings.artifacts_dir),
        "models": {n: (m.latest.version if m.latest else None)
                   for n, m in registry.models.items()}}})
    return app
