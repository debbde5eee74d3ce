"""Operations routes: Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, Response

from . import codec
from .dataplane import DataPlane
from .metrics import Metrics
from .openapi import build_spec


def make_blueprint(dataplane: DataPlane, metrics: Metrics, max_instances: int) -> Blueprint:
    bp = Blueprint("ops", __name__)

    @bp.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.exposition(), content_type=metrics.content_type)

    @bp.get("/openapi.json")
    def openapi() -> Response:
        return Response(codec.dumps(build_spec(dataplane.registry.models, max_instances)),
                        mimetype="application/json")

    return bp
