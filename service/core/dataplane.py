"""``DataPlane``: what every front end asks of the server, protocol-independent.

Readiness, model lookup, metadata, one vectorised prediction (``predict``, typed
``Prediction`` out) and the Open Inference Protocol's ``infer`` (typed ``InferRequest`` in,
``InferResponse`` out), the one entry the V2 REST routes (and a gRPC servicer) call. The V1
routes and the batch scorer decode their own formats and call ``predict``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from model import Predictor
from model.interface import Prediction

from .errors import InvalidRequest, NotReady
from .inference import (
    REQUEST_PARAMETERS,
    InferRequest,
    InferResponse,
    OutputTensor,
    check_addressed,
    check_input_parameters,
    check_parameters,
    requested_outputs,
)
from .registry import ModelVersion, Registry, ServedModel
from .signature import model_metadata
from .tensors import tensor_to_batch

#: How a DataPlane runs a model on a checked batch; a front end may run it elsewhere (the
#: HTTP worker's ``ModelLane`` runs long ones off its event loop).
Runner = Callable[[Predictor, np.ndarray], Prediction]


def run_here(predictor: Predictor, x: np.ndarray) -> Prediction:
    """The default ``Runner``: compute in the caller's thread."""
    return predictor.infer(x)


class DataPlane:
    """The serving operations over a Registry; ``max_instances`` bounds a request's rows;
    ``runner`` computes the predictions."""

    def __init__(self, registry: Registry, max_instances: int = 1024,
                 runner: Runner = run_here) -> None:
        self.registry = registry
        self.max_instances = max_instances
        self.runner = runner

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

    def models(self) -> list[ServedModel]:
        self.registry.maybe_refresh()
        return list(self.registry.models.values())

    def model(self, name: str) -> ServedModel:
        self.registry.maybe_refresh()
        return self.registry.get_model(name)

    def version(self, name: str, version: str | None = None) -> ModelVersion:
        """The named version, or the default one; NotFound / NotReady otherwise."""
        self.registry.maybe_refresh()
        return self.registry.get(name, version)

    def metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        """Open Inference Protocol model metadata of the named (or default) version."""
        model = self.model(name)
        mv = self.version(name, version)
        ready = [v for v, m in model.versions.items() if m.ready]
        return model_metadata(mv.name, ready, mv.interface)  # type: ignore[arg-type]

    def predict(self, mv: ModelVersion, x: np.ndarray) -> Prediction:
        """Run ``mv`` on checked float32 x of shape (n, *input_shape) in one call."""
        return self.runner(mv.predictor, x)  # type: ignore[arg-type]

    def infer(self, mv: ModelVersion, req: InferRequest, versioned: bool = True,
              ) -> InferResponse:
        """Answer an inference request addressed to ``mv`` (``versioned``: the client named
        the version): every protocol rule checked before the forward pass."""
        iface = mv.interface
        check_addressed(mv.name, mv.version, req, versioned)
        check_parameters(req.parameters, REQUEST_PARAMETERS, {}, "request")
        for i, tensor in enumerate(req.inputs):
            check_input_parameters(tensor, i)
        if len(req.inputs) != 1:
            raise InvalidRequest(
                f"this model takes exactly one input, {iface.input_name!r}; got "
                f"{len(req.inputs)}", {"inputs": ["Expected one input."]})
        plan = requested_outputs(iface, req)
        x = tensor_to_batch(iface, req.inputs[0], 0, self.max_instances)
        arrays = self.predict(mv, x).arrays
        specs = iface.outputs
        return InferResponse(mv.name, str(mv.version), req.id, [
            OutputTensor(specs[i].name, specs[i].datatype, arrays[i], binary)
            for i, binary in plan])
