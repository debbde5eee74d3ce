"""Input and target transforms fitted at training time and stored in the manifest.

This is the one place inputs are scaled: the trainer fits the steps on the training part
only, the artifact stores their constants, and the Predictor applies the same code. All
steps work in float32 and are per-row (a row's result never depends on other rows).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import ConfigError

F32 = np.float32


class Step:
    """One transform: ``fit`` on training data (returns self), ``transform`` any batch."""

    def fit(self, x: np.ndarray) -> Step:
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError


def _float_list(values: Any, what: str) -> list[float]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or not np.isfinite(arr).all():
        raise ConfigError(f"{what} must be a list of finite numbers")
    return [float(v) for v in arr.astype(F32)]


class Scale(Step):
    """x * factor + offset (e.g. pixels 0..255 -> 0..1 with factor 1/255)."""

    def __init__(self, factor: float, offset: float = 0.0) -> None:
        self.factor, self.offset = float(F32(factor)), float(F32(offset))
        if not (np.isfinite(self.factor) and np.isfinite(self.offset)) or self.factor == 0:
            raise ConfigError("Scale needs a finite non-zero factor and a finite offset")

    def transform(self, x: np.ndarray) -> np.ndarray:
        out = np.multiply(x, F32(self.factor), dtype=F32)
        if self.offset:
            out += F32(self.offset)
        return out

    def get_config(self) -> dict[str, Any]:
        return {"type": "Scale", "factor": self.factor, "offset": self.offset}


class SignedLog(Step):
    """sign(x) * log1p(|x|) on the given feature columns: tames long right tails (crime
    rates, proportions) so inputs far outside the training range stay moderate."""

    def __init__(self, columns: Sequence[int]) -> None:
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in columns):
            raise ConfigError(f"SignedLog columns must be non-negative integers, got {columns!r}")
        self.columns = sorted(set(columns))

    def transform(self, x: np.ndarray) -> np.ndarray:
        out = np.array(x, dtype=F32, copy=True)
        if self.columns:
            if max(self.columns) >= out.shape[-1]:
                raise ConfigError(f"SignedLog column {max(self.columns)} out of range")
            cols = out[..., self.columns]
            out[..., self.columns] = np.sign(cols) * np.log1p(np.abs(cols))
        return out

    def get_config(self) -> dict[str, Any]:
        return {"type": "SignedLog", "columns": list(self.columns)}


class Standardize(Step):
    """(x - mean) / std per feature (last axis); std of constant features becomes 1."""

    def __init__(self, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        self.mean = None if mean is None else _float_list(mean, "Standardize mean")
        self.std = None if std is None else _float_list(std, "Standardize std")
        if self.std is not None and min(self.std) <= 0:
            raise ConfigError("Standardize std must be positive")
        if (self.mean is None) != (self.std is None) or (
                self.mean is not None and len(self.mean) != len(self.std)):
            raise ConfigError("Standardize needs mean and std of the same length")

    def fit(self, x: np.ndarray) -> Standardize:
        x64 = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
        std = x64.std(axis=0)
        std[std < 1e-12] = 1.0
        self.mean = _float_list(x64.mean(axis=0), "mean")
        self.std = _float_list(std, "std")
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self.mean is None:
            raise ConfigError("Standardize is not fitted")
        if np.shape(x)[-1] != len(self.mean):
            raise ConfigError(f"Standardize fitted on {len(self.mean)} features, "
                              f"got {np.shape(x)[-1]}")
        out = np.subtract(x, np.asarray(self.mean, dtype=F32), dtype=F32)
        out /= np.asarray(self.std, dtype=F32)
        return out

    def get_config(self) -> dict[str, Any]:
        return {"type": "Standardize", "mean": self.mean, "std": self.std}


#: P. J. Acklam's coefficients for normal_ppf: numerators and denominators of the central
#: (a/b) and tail (c/d) rational functions, and where the tails begin. Shared with the
#: ONNX export, which must compute the same function.
ACKLAM = (
    (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
     1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00),
    (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
     6.680131188771972e01, -1.328068155288572e01),
    (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
     -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00),
    (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
     3.754408661907416e00),
    0.02425,
)


def normal_ppf(p: np.ndarray) -> np.ndarray:
    """Inverse of the standard normal CDF for p in (0, 1), vectorised (P. J. Acklam's
    rational approximation, relative error < 1.2e-9: far below float32 resolution)."""
    p = np.asarray(p, dtype=np.float64)
    a, b, c, d, low = ACKLAM
    out = np.empty_like(p)
    mid = (p >= low) & (p <= 1 - low)
    q = p[mid] - 0.5
    r = q * q
    out[mid] = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / \
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    for mask, sign, pp in ((p < low, 1.0, p), (p > 1 - low, -1.0, 1 - p)):
        qq = np.sqrt(-2 * np.log(pp[mask]))
        out[mask] = sign * (((((c[0] * qq + c[1]) * qq + c[2]) * qq + c[3]) * qq + c[4]) * qq
                            + c[5]) / ((((d[0] * qq + d[1]) * qq + d[2]) * qq + d[3]) * qq + 1)
    return out


class QuantileNormal(Step):
    """Map each feature through its training-data quantiles onto a standard normal.

    Like a tree, the network then sees only the rank of a value among the training data:
    skew disappears, and values beyond the training range are clamped to the extreme
    quantile (``bound`` standard deviations) instead of being extrapolated.
    """

    def __init__(self, quantiles: Sequence[Sequence[float]] | None = None, n_quantiles: int = 50,
                 bound: float = 3.0) -> None:
        self.n_quantiles = int(n_quantiles)
        if self.n_quantiles < 2:
            raise ConfigError("QuantileNormal needs n_quantiles >= 2")
        if not 0 < bound < 8:
            raise ConfigError(f"QuantileNormal bound must be in (0, 8), got {bound!r}")
        self.bound = float(bound)
        self.quantiles = None
        if quantiles is not None:
            q = np.asarray(quantiles, dtype=np.float64)
            if q.ndim != 2 or q.shape[1] != self.n_quantiles or not np.isfinite(q).all() \
                    or (np.diff(q, axis=1) < 0).any():
                raise ConfigError("QuantileNormal quantiles must be one non-decreasing row of "
                                  "n_quantiles finite numbers per feature")
            self.quantiles = q

    def fit(self, x: np.ndarray) -> QuantileNormal:
        x64 = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
        levels = np.linspace(0, 1, self.n_quantiles)
        self.quantiles = np.quantile(x64, levels, axis=0).T
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self.quantiles is None:
            raise ConfigError("QuantileNormal is not fitted")
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1] != len(self.quantiles):
            raise ConfigError(f"QuantileNormal fitted on {len(self.quantiles)} features, "
                              f"got {x.shape[-1]}")
        levels = np.linspace(0, 1, self.n_quantiles)
        u = np.empty(x.shape, dtype=np.float64)
        for j, q in enumerate(self.quantiles):
            # tied quantiles (e.g. many zeros): average of the lowest and highest level
            up = np.interp(x[..., j], q, levels)
            down = 1 - np.interp(-x[..., j], -q[::-1], levels)
            u[..., j] = 0.5 * (up + down)
        tail = 1 - 0.5 * (1 + math.erf(self.bound / math.sqrt(2)))
        return normal_ppf(np.clip(u, tail, 1 - tail)).astype(F32)

    def get_config(self) -> dict[str, Any]:
        q = None if self.quantiles is None else [
            [float(v) for v in row] for row in self.quantiles]
        return {"type": "QuantileNormal", "quantiles": q, "n_quantiles": self.n_quantiles,
                "bound": self.bound}


class Clip(Step):
    """Clip every value into [low, high]: bounds what a network sees for extreme inputs."""

    def __init__(self, low: float, high: float) -> None:
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise ConfigError(f"Clip needs finite low < high, got {low!r}, {high!r}")
        self.low, self.high = float(low), float(high)

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(x, dtype=F32), F32(self.low), F32(self.high))

    def get_config(self) -> dict[str, Any]:
        return {"type": "Clip", "low": self.low, "high": self.high}


STEP_TYPES: dict[str, type[Step]] = {
    "Scale": Scale, "SignedLog": SignedLog, "Standardize": Standardize, "Clip": Clip,
    "QuantileNormal": QuantileNormal,
}


def step_from_config(config: Mapping[str, Any]) -> Step:
    """Rebuild a step from its ``{"type": ..., ...}`` config; ConfigError if invalid."""
    if not isinstance(config, Mapping) or not isinstance(config.get("type"), str):
        raise ConfigError(f"a preprocessing step needs a 'type', got {config!r}")
    args = {k: v for k, v in config.items() if k != "type"}
    cls = STEP_TYPES.get(config["type"])
    if cls is None:
        raise ConfigError(f"unknown preprocessing step {config['type']!r}; "
                          f"known: {sorted(STEP_TYPES)}")
    try:
        return cls(**args)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad preprocessing step {config['type']}: {exc}") from None


class Pipeline:
    """Steps applied in order; ``fit`` fits each on the output of the previous ones."""

    def __init__(self, steps: Sequence[Step] = ()) -> None:
        self.steps = list(steps)

    @classmethod
    def from_config(cls, configs: Sequence[Mapping[str, Any]]) -> Pipeline:
        if not isinstance(configs, list):
            raise ConfigError("preprocessing must be a list of steps")
        return cls([step_from_config(c) for c in configs])

    def get_config(self) -> list[dict[str, Any]]:
        return [s.get_config() for s in self.steps]

    def fit(self, x: np.ndarray) -> Pipeline:
        for step in self.steps:
            x = step.fit(x).transform(x)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        out = np.asarray(x, dtype=F32)
        for step in self.steps:
            out = step.transform(out)
        return out


class TargetScaler:
    """Regression targets scaled to mean 0 / std 1 for training, and back for predictions.

    With ``log=True`` the scaling applies to log(y) (positive targets such as prices, whose
    errors are closer to multiplicative), and predictions come back through exp.
    """

    def __init__(self, mean: float = 0.0, std: float = 1.0, log: bool = False) -> None:
        if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
            raise ConfigError(f"TargetScaler needs a finite mean and std > 0, got {mean}, {std}")
        self.mean, self.std, self.log = float(F32(mean)), float(F32(std)), bool(log)

    @classmethod
    def fitted(cls, y: np.ndarray, log: bool = False) -> TargetScaler:
        y64 = np.asarray(y, dtype=np.float64)
        if log:
            if (y64 <= 0).any():
                raise ConfigError("a log target needs all targets > 0")
            y64 = np.log(y64)
        return cls(float(y64.mean()), float(y64.std()) or 1.0, log)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TargetScaler:
        if not isinstance(config, Mapping) or config.get("type") != "TargetScaler":
            raise ConfigError(f"target transform must be a TargetScaler, got {config!r}")
        return cls(config.get("mean", 0.0), config.get("std", 1.0), config.get("log", False))

    def get_config(self) -> dict[str, Any]:
        return {"type": "TargetScaler", "mean": self.mean, "std": self.std, "log": self.log}

    def transform(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if self.log:
            y = np.log(y)
        return ((y - self.mean) / self.std).astype(F32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        out = np.multiply(z, F32(self.std), dtype=F32)
        out += F32(self.mean)
        if self.log:
            np.exp(out, out=out)
        return out
