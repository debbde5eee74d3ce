"""Operations routes: Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, Response

from ..core import jsonio
from ..core.dataplane import DataPlane
from ..core.metrics import RequestMetrics
from .openapi import build_spec


def make_blueprint(dataplane: DataPlane, metrics: RequestMetrics) -> Blueprint:
    """The operations routes: /metrics and /openapi.json."""
    bp = Blueprint("ops", __name__)

    @bp.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.exposition(), content_type=metrics.content_type)

    @bp.get("/openapi.json")
    def openapi() -> Response:
        return Response(jsonio.dumps(build_spec(dataplane.registry.models,
                                                dataplane.max_instances)),
                        mimetype="application/json")

    return bp
