"""``Predictor``: a verified artifact plus its preprocessing, with input checks.

The one object the service and the batch scorer use, so both accept and reject exactly
the same inputs and compute exactly the same outputs.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .activations import softmax
from .artifact import Artifact, load_artifact
from .errors import ArtifactError, ConfigError, InputError
from .interface import ModelInterface, Prediction
from .preprocessing import Pipeline, TargetScaler


class Predictor:
    """Checks raw inputs, applies the stored preprocessing, runs the network.

    ``predict(x)`` takes a batch: (n, *input_shape) or (n, prod(input_shape)) numbers.
    Regression returns (n,) float32 values in the output's unit; classification returns
    (n, classes) float32 probabilities. Thread-safe.
    """

    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact
        m = artifact.manifest
        try:
            self.pipeline = Pipeline.from_config(m["preprocessing"].get("input", []))
            target = m["preprocessing"].get("target")
            self.target = TargetScaler.from_config(target) if target else None
        except ConfigError as exc:
            raise ArtifactError(f"{artifact.path}: preprocessing: {exc}") from None
        self.interface = ModelInterface.from_manifest(m)
        self.input_shape: tuple[int, ...] = self.interface.input_shape
        self.input_size = self.interface.input_size
        self.value_range: tuple[float, float] | None = self.interface.value_range

    @classmethod
    def from_artifact(cls, path: str | os.PathLike) -> Predictor:
        """Load, verify and wrap the artifact folder ``path``."""
        return cls(load_artifact(path))

    # -- description --------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        return self.artifact.manifest

    @property
    def name(self) -> str:
        return self.artifact.name

    @property
    def version(self) -> int:
        return self.artifact.version

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def features(self) -> list[str] | None:
        """Ordered input feature names (tabular models), else None."""
        return self.manifest["input"].get("features")

    @property
    def labels(self) -> list[str] | None:
        """Class names (classifiers), else None."""
        return self.manifest["output"].get("labels")

    # -- checks -------------------------------------------------------------------------
    def find_problems(self, x: Any) -> tuple[np.ndarray, dict[int, list[str]]]:
        """Convert x to float32 rows and list what is wrong with each bad row; see the
        module function ``find_problems``."""
        return find_problems(x, self.input_shape, self.value_range)

    def check(self, x: Any) -> np.ndarray:
        """x as float32 of shape (n, *input_shape), or InputError naming the bad rows."""
        rows, problems = self.find_problems(x)
        if problems:
            bad = sorted(problems)
            raise InputError(f"{len(bad)} of {rows.shape[0]} instances are invalid "
                             f"(first: instance {bad[0]}: {problems[bad[0]][0]})", problems)
        return rows.reshape(rows.shape[0], *self.input_shape)

    # -- prediction ---------------------------------------------------------------------
    def predict(self, x: Any) -> np.ndarray:
        """Check x, then predict; see the class docstring for shapes."""
        return self.predict_checked(self.check(x))

    def infer(self, x: np.ndarray) -> Prediction:
        """The typed outputs (see ``ModelInterface``) for float32 x of shape
        (n, *input_shape) that passed ``check``."""
        return self.interface.prediction(self.predict_checked(x))

    def predict_checked(self, x: np.ndarray) -> np.ndarray:
        """Predict for float32 x of shape (n, *input_shape) that passed ``check``."""
        out = self.artifact.network.infer(self.pipeline.transform(x))
        if self.task == "classification":
            return softmax(out, out=out)
        values = out[:, 0]
        return self.target.inverse(values) if self.target else values

    def __repr__(self) -> str:
        return f"Predictor({self.name!r}, version={self.version}, task={self.task!r})"


def as_rows(x: Any, input_shape: tuple[int, ...]) -> np.ndarray:
    """x as a float64-or-narrower numeric array of shape (n, prod(input_shape)).

    x is a batch: (n, *input_shape) or (n, prod(input_shape)) numbers. Raises InputError.
    """
    size = int(np.prod(input_shape))
    try:
        arr = np.asarray(x)
    except ValueError:
        raise InputError("instances must all have the same shape") from None
    if arr.dtype.kind == "b":
        raise InputError("values must be numbers, not booleans")
    if arr.dtype.kind not in "iuf":
        raise InputError("values must be numbers")
    want = " x ".join(map(str, input_shape))
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise InputError("no instances to predict")
    if arr.shape[1:] not in (input_shape, (size,)):
        raise InputError(f"each instance must be {want} numbers"
                         + (f" (or {size} in one list)" if len(input_shape) > 1 else "")
                         + f"; got instances of shape {list(arr.shape[1:])}")
    return arr.reshape(arr.shape[0], size)


def find_problems(x: Any, input_shape: tuple[int, ...], value_range: tuple[float, float] | None,
                  ) -> tuple[np.ndarray, dict[int, list[str]]]:
    """Convert x to float32 rows and list what is wrong with each bad row.

    The one definition of a valid input value, used by ``Predictor`` and by callers that
    know a model's interface but not its weights (the batch scorer's remote mode): every
    value must be finite in float32 and, when ``value_range`` is given, inside it.
    Returns (rows of shape (n, prod(input_shape)), {row index: [messages]}). Raises
    InputError only when the batch as a whole is unusable (wrong shape or type, empty).
    """
    rows = as_rows(x, input_shape)
    with np.errstate(over="ignore", invalid="ignore"):
        # C order always: NumPy's SIMD loops may round differently on the contiguous
        # columns of a Fortran-ordered batch (e.g. log1p in SignedLog), and outputs must
        # not depend on how the caller laid out its array
        rows32 = rows.astype(np.float32, order="C")
    problems: dict[int, list[str]] = {}
    finite = np.isfinite(rows32)
    for i in np.flatnonzero(~finite.all(axis=1)):
        j = int(np.flatnonzero(~finite[i])[0])
        problems[int(i)] = [f"value {j} is {rows[i, j].item()!r}, {NOT_FINITE}"]
    if value_range is not None:
        outside = ((rows32 < value_range[0]) | (rows32 > value_range[1])) & finite
        for i in np.flatnonzero(outside.any(axis=1)):
            j = int(np.flatnonzero(outside[i])[0])
            problems.setdefault(int(i), []).append(
                f"value {j} is {rows[i, j].item()!r}, {outside_range(value_range)}")
    return rows32, problems


#: Why a non-finite value is refused; with ``outside_range``, the one wording of a bad value
#: (``find_problems`` says "value 3 is nan, <why>", per-field messages "nan is <why>.").
NOT_FINITE = ("not allowed: NaN, Infinity and numbers beyond float32 range are not valid "
              "inputs")


def outside_range(value_range: tuple[float, float]) -> str:
    """Why a finite value outside ``value_range`` is refused."""
    return f"outside the allowed range [{value_range[0]:g}, {value_range[1]:g}]"


def value_problem(value: float, value_range: tuple[float, float] | None) -> str:
    """Why ``value`` (known to be bad) is refused: NOT_FINITE or ``outside_range``."""
    if value_range is not None and np.isfinite(np.float32(value)):
        return outside_range(value_range)
    return NOT_FINITE
