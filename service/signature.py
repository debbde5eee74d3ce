"""What a loaded model accepts and returns, in protocol terms: names, shapes, datatypes.

Built once per loaded version from its Predictor, so metadata, validation and the OpenAPI
document all describe the same thing. The V2 model metadata carries it whole (its
``parameters`` hold what the tensors cannot say), so a client such as the batch scorer's
remote mode rebuilds the same Signature and validates exactly as the server does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from model import Predictor
from model.predictor import find_problems


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

    def find_problems(self, x: Any) -> tuple[Any, dict[int, list[str]]]:
        """``Predictor.find_problems`` for this interface: the model's own value checks."""
        return find_problems(x, self.input_shape, self.value_range)

    def parameters(self) -> dict[str, Any]:
        """What the V2 tensor metadata cannot say: task, feature names, value range, labels."""
        out: dict[str, Any] = {"task": self.task}
        if self.features is not None:
            out["features"] = list(self.features)
        if self.value_range is not None:
            out["value_range"] = list(self.value_range)
        if self.labels is not None:
            out["labels"] = list(self.labels)
        return out

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
    labels = tuple(predictor.labels or ()) if predictor.task == "classification" else None
    return _signature(predictor.task, tuple(predictor.input_shape),
                      tuple(predictor.features) if predictor.features else None,
                      predictor.value_range, labels,
                      str(predictor.manifest["output"].get("name") or "prediction"))


def signature_from_metadata(meta: dict[str, Any]) -> Signature:
    """The Signature a server describes in its V2 model metadata (see ``parameters``).

    Raises ValueError (with the reason) for metadata this server would not have written.
    """
    try:
        params = meta["parameters"]
        task = params["task"]
        if task not in ("regression", "classification"):
            raise ValueError(f"unknown task {task!r}")
        shape = tuple(int(d) for d in meta["inputs"][0]["shape"][1:])
        features = tuple(map(str, params["features"])) if "features" in params else None
        rng = params.get("value_range")
        value_range = (float(rng[0]), float(rng[1])) if rng is not None else None
        labels = tuple(map(str, params.get("labels", ()))) \
            if task == "classification" else None
        output_name = str(meta["outputs"][0]["name"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"unexpected model metadata ({type(exc).__name__}: {exc})") from None
    sig = _signature(task, shape, features, value_range, labels, output_name)
    if [t.as_dict() for t in sig.inputs] != meta["inputs"] or \
            [t.as_dict() for t in sig.outputs] != meta["outputs"]:
        raise ValueError("model metadata inputs/outputs do not match its parameters")
    return sig


def _signature(task: str, input_shape: tuple[int, ...], features: tuple[str, ...] | None,
               value_range: tuple[float, float] | None, labels: tuple[str, ...] | None,
               output_name: str) -> Signature:
    input_name = "features" if features else "images" if len(input_shape) == 2 else "inputs"
    inputs = (TensorSpec(input_name, "FP32", (-1, *input_shape)),)
    if task == "classification":
        output_name = "probabilities"
        outputs = (TensorSpec("probabilities", "FP32", (-1, len(labels or ()))),
                   TensorSpec("label", "INT64", (-1,)))
    else:
        outputs = (TensorSpec(output_name, "FP32", (-1,)),)
    return Signature(task=task, input_shape=input_shape, features=features,
                     value_range=value_range, labels=labels, output_name=output_name,
                     inputs=inputs, outputs=outputs)
