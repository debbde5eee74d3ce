"""Protocol-independent serving logic: readiness, model lookup, one vectorised prediction.

The V1 and V2 blueprints translate their wire formats to these calls and back; nothing here
knows HTTP or JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import NotReady
from .registry import Model, ModelVersion, Registry


@dataclass(frozen=True)
class Prediction:
    """Outputs for a batch of n rows: ``values`` (n,) float32 for regression; ``probabilities``
    (n, classes) float32 and ``labels`` (n,) int64 for classification; C-contiguous.
    ``model`` is None for outputs a remote server computed (the batch scorer's remote mode)."""

    model: ModelVersion | None
    values: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    labels: np.ndarray | None = None


class DataPlane:
    """What the routes ask of the server, over a Registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def live(self) -> bool:
        return True

    def ready(self) -> None:
        """Return if the server can serve (start-up scan done, at least one model ready);
        NotReady naming every model that is not ready otherwise."""
        self.registry.maybe_refresh()
        models = self.registry.models
        if not self.registry.loaded:
            raise NotReady("the server is still loading its models")
        if not any(m.ready for m in models.values()):
            raise NotReady(
                "no model is ready" + ("" if models else
                                       f": no models under {self.registry.root}/ (train "
                                       "one, or set SERVICE_ARTIFACTS_DIR)"),
                {"models": {name: m.reason for name, m in models.items()}})

    def models(self) -> list[Model]:
        self.registry.maybe_refresh()
        return list(self.registry.models.values())

    def model(self, name: str) -> Model:
        self.registry.maybe_refresh()
        return self.registry.get_model(name)

    def version(self, name: str, version: str | None = None) -> ModelVersion:
        """The named version, or the default one; NotFound / NotReady otherwise."""
        self.registry.maybe_refresh()
        return self.registry.get(name, version)

    def predict(self, mv: ModelVersion, x: np.ndarray) -> Prediction:
        """Run ``mv`` on checked float32 x of shape (n, *input_shape) in one call."""
        predictor: Any = mv.predictor
        out = predictor.predict_checked(x)
        if predictor.task == "classification":
            return Prediction(mv, probabilities=np.ascontiguousarray(out),
                              labels=out.argmax(axis=1))
        return Prediction(mv, values=np.ascontiguousarray(out))
