"""The artifact's preprocessing steps and target transform as ONNX nodes.

Each converter mirrors the NumPy code of its step in ``model/preprocessing.py`` operation by
operation and in the same precision (float32, or float64 where the step computes in float64:
the quantile transform), so the graph computes what the service computes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from model.preprocessing import (
    ACKLAM,
    Clip,
    QuantileNormal,
    Scale,
    SignedLog,
    Standardize,
    Step,
    TargetScaler,
)

from ..errors import ExportError
from .graph import DOUBLE, F32, F64, FLOAT, INT64, Graph


def _scale(g: Graph, x: str, step: Scale, features: int) -> str:
    out = g.op("Mul", x, g.const("scale_factor", step.factor, F32))
    if step.offset:
        out = g.op("Add", out, g.const("scale_offset", step.offset, F32))
    return out


def _log1p(g: Graph, a: str) -> str:
    """log1p of float64 a >= 0: log(u) * a / (u - 1) with u = 1 + a (exact where u == 1),
    accurate to a few float64 ulps where a plain log(1 + a) loses the small values."""
    u = g.add(a, g.const("one", 1.0, F64))
    ratio = g.div(g.mul(g.op("Log", u), a), g.sub(u, g.const("one", 1.0, F64)))
    return g.where(g.op("Equal", u, g.const("one", 1.0, F64)), a, ratio)


def _signed_log(g: Graph, x: str, step: SignedLog, features: int) -> str:
    if step.columns and max(step.columns) >= features:
        raise ExportError(f"SignedLog column {max(step.columns)} is out of range for "
                          f"{features} features")
    mask = np.zeros(features, dtype=bool)
    mask[step.columns] = True
    magnitude = g.cast(_log1p(g, g.cast(g.op("Abs", x), DOUBLE)), FLOAT)
    return g.where(g.const("signed_log_columns", mask), g.mul(g.op("Sign", x), magnitude), x)


def _standardize(g: Graph, x: str, step: Standardize, features: int) -> str:
    if step.mean is None or len(step.mean) != features:
        raise ExportError(f"Standardize is not fitted for {features} features")
    centred = g.sub(x, g.const("standardize_mean", step.mean, F32))
    return g.div(centred, g.const("standardize_std", step.std, F32))


def _clip(g: Graph, x: str, step: Clip, features: int) -> str:
    return g.op("Clip", x, g.const("clip_low", step.low, F32), g.const("clip_high", step.high, F32))


def _interp(g: Graph, x: str, xp: np.ndarray, fp: np.ndarray) -> str:
    """``np.interp(x[..., j], xp[j], fp)`` for every feature j at once (float64).

    NumPy finds j, the last index with xp[j] <= x (the count of such points minus one),
    answers fp[0] left of xp, fp[-1] from xp[-1] on, fp[j] where x == xp[j], and else
    slope[j] * (x - xp[j]) + fp[j] with slope[j] = (fp[j+1] - fp[j]) / (xp[j+1] - xp[j]).
    The count is a comparison with all of a feature's points (a [..., features, points]
    boolean), the rest gathers from flat per-feature tables.
    """
    features, points = xp.shape
    fpt = np.broadcast_to(fp, xp.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.diff(fpt, axis=1) / np.diff(xp, axis=1)
    # a tied pair (zero width) is never the interval of any x: j is the last tied index
    slope = np.concatenate([np.where(np.isfinite(slope), slope, 0.0),
                            np.zeros((features, 1))], axis=1)
    below = g.op("LessOrEqual", g.const("interp_xp", xp, F64),
                 g.op("Unsqueeze", x, g.const("last_axis", [-1], np.int64)))
    # summed in float32 (exact for any count below 2**24): onnxruntime's integer
    # ReduceSum is several times slower
    count = g.op("ReduceSum", g.cast(below, FLOAT), g.const("last_axis", [-1], np.int64),
                 keepdims=0)
    count = g.cast(count, INT64)
    j = g.op("Max", g.sub(count, g.const("one_i", 1, np.int64)), g.const("zero_i", 0, np.int64))
    j = g.op("Min", j, g.const("last_interval", points - 2, np.int64))
    flat = g.add(j, g.const("feature_offsets", np.arange(features) * points, np.int64))
    xj = g.op("Gather", g.const("interp_xp_flat", xp.ravel(), F64), flat)
    fj = g.op("Gather", g.const("interp_fp_flat", fpt.ravel(), F64), flat)
    sj = g.op("Gather", g.const("interp_slope_flat", slope.ravel(), F64), flat)
    inside = g.add(g.mul(sj, g.sub(x, xj)), fj)
    out = g.where(g.op("Equal", xj, x), fj, inside)
    out = g.where(g.op("Less", count, g.const("one_i", 1, np.int64)),
                  g.const("interp_left", fp[0], F64), out)
    return g.where(g.op("Greater", count, g.const("interp_points", points - 1, np.int64)),
                   g.const("interp_right", fp[-1], F64), out)


def _horner(g: Graph, x: str, coefficients: tuple[float, ...], last: float | None) -> str:
    """((c0 * x + c1) * x + ...) [* x + last], in NumPy's order of operations."""
    acc = g.add(g.mul(g.const("ppf_c", coefficients[0], F64), x),
                g.const("ppf_c", coefficients[1], F64))
    for c in [*coefficients[2:], *(() if last is None else (last,))]:
        acc = g.add(g.mul(acc, x), g.const("ppf_c", c, F64))
    return acc


def _normal_ppf(g: Graph, p: str) -> str:
    """``model.preprocessing.normal_ppf`` (Acklam's approximation) on float64 p: both
    branches computed everywhere, then the one NumPy takes is selected."""
    a, b, c, d, low = ACKLAM
    q = g.sub(p, g.const("half", 0.5, F64))
    r = g.mul(q, q)
    central = g.div(g.mul(_horner(g, r, a, None), q), _horner(g, r, b, 1.0))
    lower = g.op("Less", p, g.const("half", 0.5, F64))
    pp = g.where(lower, p, g.sub(g.const("one", 1.0, F64), p))
    sign = g.where(lower, g.const("one", 1.0, F64), g.const("minus_one", -1.0, F64))
    qq = g.op("Sqrt", g.mul(g.const("minus_two", -2.0, F64), g.op("Log", pp)))
    tail = g.div(g.mul(sign, _horner(g, qq, c, None)), _horner(g, qq, d, 1.0))
    mid = g.op("And", g.op("GreaterOrEqual", p, g.const("ppf_low", low, F64)),
               g.op("LessOrEqual", p, g.const("ppf_high", 1 - low, F64)))
    return g.where(mid, central, tail)


def _quantile_normal(g: Graph, x: str, step: QuantileNormal, features: int) -> str:
    if step.quantiles is None or len(step.quantiles) != features:
        raise ExportError(f"QuantileNormal is not fitted for {features} features")
    q = np.asarray(step.quantiles, dtype=np.float64)
    levels = np.linspace(0, 1, step.n_quantiles)
    x64 = g.cast(x, DOUBLE)
    up = _interp(g, x64, q, levels)
    down = g.sub(g.const("one", 1.0, F64), _interp(g, g.op("Neg", x64), -q[:, ::-1], levels))
    u = g.mul(g.const("half", 0.5, F64), g.add(up, down))
    tail = 1 - 0.5 * (1 + math.erf(step.bound / math.sqrt(2)))
    u = g.op("Min", g.op("Max", u, g.const("quantile_low", tail, F64)),
             g.const("quantile_high", 1 - tail, F64))
    return g.cast(_normal_ppf(g, u), FLOAT)


STEP_CONVERTERS: dict[type[Step], Callable[[Graph, str, Step, int], str]] = {
    Scale: _scale, SignedLog: _signed_log, Standardize: _standardize, Clip: _clip,
    QuantileNormal: _quantile_normal,
}


def convert_steps(g: Graph, x: str, steps: list[Step], features: int) -> str:
    """The input pipeline on float32 x of shape (n, ..., features); returns the output name."""
    for i, step in enumerate(steps):
        converter = STEP_CONVERTERS.get(type(step))
        if converter is None:
            raise ExportError(f"preprocessing step {i} ({type(step).__name__}) has no ONNX "
                              f"form; exportable steps: "
                              f"{', '.join(sorted(c.__name__ for c in STEP_CONVERTERS))}")
        x = converter(g, x, step, features)
    return x


def convert_target_inverse(g: Graph, z: str, target: TargetScaler | None) -> str:
    """``TargetScaler.inverse`` on float32 z: z * std + mean, then exp for a log target."""
    if target is None:
        return z
    out = g.add(g.mul(z, g.const("target_std", target.std, F32)),
                g.const("target_mean", target.mean, F32))
    return g.op("Exp", out) if target.log else out
