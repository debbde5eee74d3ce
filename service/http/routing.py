"""What a URL addresses: the converters of its model and version segments, and the model
version it resolves to, noted in the request's metrics record."""

from __future__ import annotations

from flask import request
from werkzeug.routing import BaseConverter

from model.artifact import NAME_PATTERN

from ..core.dataplane import DataPlane
from ..core.metrics import RequestRecord
from ..core.registry import ModelVersion


class ModelNameConverter(BaseConverter):
    """A model name as artifacts allow it (no ':' or '/', so ':predict' splits cleanly)."""

    regex = NAME_PATTERN.pattern.strip("^$")


class VersionConverter(BaseConverter):
    """A version segment; checked by the registry so a bad one is a clear 404."""

    regex = r"[^/:]{1,32}"


def addressed(dataplane: DataPlane, name: str, version: str | None,
              ) -> tuple[ModelVersion, RequestRecord]:
    """The model version the URL names (or the default one), recorded for metrics and logs;
    NotFound / NotReady otherwise."""
    mv = dataplane.version(name, version)
    record = request.environ["service.record"]
    record.model, record.version = name, str(mv.version)
    return mv, record
