"""What a model takes and returns, read once from its manifest into typed objects.

``ModelInterface`` is the one definition of a model's inputs and outputs (names, datatypes,
shapes, feature names, value range, class labels); every front end describes and writes
outputs from it instead of reading the manifest's dict. ``Prediction`` is the typed result
of ``Predictor.infer``: one array per output of the interface, in its order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output tensor: name, datatype, shape with -1 for the batch dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _input_name(features: tuple[str, ...] | None, shape: tuple[int, ...]) -> str:
    """Default input tensor name for manifests that do not set ``input.name``."""
    return "features" if features else "images" if len(shape) in (2, 3) else "inputs"


@dataclass(frozen=True, slots=True)
class ModelInterface:
    """A model's interface as its manifest states it.

    ``input_shape`` is one instance, e.g. (13,) or (28, 28); ``features`` names the columns
    of tabular models; ``value_range`` bounds every input value when set; ``labels`` are
    the class names of classifiers. ``outputs``: regression has one FP32 output of shape
    (-1,), named by ``output.name``; classification has ``probabilities`` FP32 (-1, classes)
    and ``label`` INT64 (-1,), the index of the most probable class.
    """

    task: str
    input_shape: tuple[int, ...]
    features: tuple[str, ...] | None
    value_range: tuple[float, float] | None
    labels: tuple[str, ...] | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    #: numbers in one instance (the product of ``input_shape``), kept for the hot path
    input_size: int
    output_names: tuple[str, ...]

    @classmethod
    def build(cls, task: str, input_shape: tuple[int, ...],
              features: tuple[str, ...] | None = None,
              value_range: tuple[float, float] | None = None,
              labels: tuple[str, ...] | None = None, input_name: str | None = None,
              output_name: str | None = None) -> ModelInterface:
        """The interface of a model of ``task`` (the one place the output layout is set)."""
        if task not in ("regression", "classification"):
            raise ValueError(f"unknown task {task!r}")
        inputs = (TensorSpec(input_name or _input_name(features, input_shape), "FP32",
                             (-1, *input_shape)),)
        if task == "classification":
            outputs = (TensorSpec("probabilities", "FP32", (-1, len(labels or ()))),
                       TensorSpec("label", "INT64", (-1,)))
        else:
            labels = None
            outputs = (TensorSpec(output_name or "prediction", "FP32", (-1,)),)
        size = 1
        for d in input_shape:
            size *= d
        return cls(task, tuple(input_shape), features, value_range, labels, inputs, outputs,
                   size, tuple(o.name for o in outputs))

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> ModelInterface:
        """The interface of a validated manifest (see ``artifact.validate_manifest``)."""
        inp, out = manifest["input"], manifest["output"]
        rng = inp.get("range")
        return cls.build(
            manifest["task"], tuple(inp["shape"]),
            tuple(inp["features"]) if inp.get("features") else None,
            (float(rng[0]), float(rng[1])) if rng else None,
            tuple(out["labels"]) if out.get("labels") else None,
            inp.get("name"), out.get("name"))

    @property
    def input_name(self) -> str:
        return self.inputs[0].name

    def prediction(self, out: np.ndarray) -> Prediction:
        """The typed result of the network's final output ``out`` ((n,) values for
        regression, (n, classes) probabilities for classification)."""
        out = np.ascontiguousarray(out)
        if self.task == "classification":
            return Prediction((out, out.argmax(axis=1)))
        return Prediction((out,))


@dataclass(frozen=True, slots=True)
class Prediction:
    """Outputs for n rows: one C-contiguous array per output of the ``ModelInterface``, in
    its order (regression: values (n,) float32; classification: probabilities (n, classes)
    float32, then labels (n,) int64)."""

    arrays: tuple[np.ndarray, ...]

    @property
    def values(self) -> np.ndarray:
        """Regression values, (n,) float32."""
        return self.arrays[0]

    @property
    def probabilities(self) -> np.ndarray:
        """Class probabilities, (n, classes) float32."""
        return self.arrays[0]

    @property
    def labels(self) -> np.ndarray:
        """Most probable class indices, (n,) int64."""
        return self.arrays[1]
