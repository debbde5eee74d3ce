"""What a loaded model accepts and returns, in protocol terms: names, shapes, datatypes.

Built once per loaded version from its Predictor, so metadata, validation and the OpenAPI
document all describe the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from model import Predictor


@dataclass(frozen=True)
class TensorSpec:
    """One V2 tensor: name, datatype, shape with -1 for the batch dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Signature:
    """The interface of one model version.

    ``features`` is set for tabular models (instances may be objects keyed by feature name);
    ``input_shape`` is the shape of one instance, e.g. (13,) or (28, 28).
    """

    task: str
    input_shape: tuple[int, ...]
    features: tuple[str, ...] | None
    value_range: tuple[float, float] | None
    labels: tuple[str, ...] | None
    output_name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_size(self) -> int:
        size = 1
        for d in self.input_shape:
            size *= d
        return size

    @property
    def input_name(self) -> str:
        return self.inputs[0].name

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    def describe_instance(self) -> str:
        """A person's description of one valid instance, for error messages."""
        if self.features:
            return (f"an object with the {len(self.features)} numbers "
                    f"{', '.join(self.features)} or a list of {len(self.features)} numbers in "
                    "that order")
        if len(self.input_shape) == 1:
            return f"a list of {self.input_size} numbers"
        nested = " of ".join(f"{d} lists" for d in self.input_shape[:-1])
        return (f"a list of {self.input_size} numbers or {nested} of {self.input_shape[-1]} "
                "numbers")


def signature_of(predictor: Predictor) -> Signature:
    """Derive the protocol interface of ``predictor`` from its manifest."""
    features = tuple(predictor.features) if predictor.features else None
    input_name = "features" if features else "images" if len(predictor.input_shape) == 2 \
        else "inputs"
    inputs = (TensorSpec(input_name, "FP32", (-1, *predictor.input_shape)),)
    if predictor.task == "classification":
        labels = tuple(predictor.labels or ())
        output_name = "probabilities"
        outputs = (TensorSpec("probabilities", "FP32", (-1, len(labels))),
                   TensorSpec("label", "INT64", (-1,)))
    else:
        labels = None
        output_name = str(predictor.manifest["output"].get("name") or "prediction")
        outputs = (TensorSpec(output_name, "FP32", (-1,)),)
    return Signature(task=predictor.task, input_shape=tuple(predictor.input_shape),
                     features=features, value_range=predictor.value_range, labels=labels,
                     output_name=output_name, inputs=inputs, outputs=outputs)
