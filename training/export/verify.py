"""Run an exported graph with onnxruntime beside ``Predictor`` before it is written, so a
graph that computes something else is refused instead of shipped."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from model import Artifact, Predictor
from model.preprocessing import QuantileNormal, Standardize

from ..errors import ExportError, MissingExtraError

#: What the issue promises: probabilities to 1e-5, regression outputs to 1e-4 (relative for
#: values above 1, so a price in dollars is held to the same digits as one in $1000s).
TOLERANCE = {"classification": 1e-5, "regression": 1e-4}


def session(model: onnx.ModelProto | bytes, threads: int = 1) -> Any:
    """An onnxruntime CPU session of ``threads`` intra-op threads (one: bitwise repeatable)."""
    try:
        import onnxruntime as ort
    except ModuleNotFoundError:
        raise MissingExtraError("onnxruntime is not installed: pip install '.[export]' "
                                "(or export with --no-verify)") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def probe_inputs(predictor: Predictor, n: int = 64, seed: int = 0) -> np.ndarray:
    """Seeded float32 inputs the model accepts, spread over the range its preprocessing
    was fitted on (quantiles, mean and std) or its declared value range."""
    rng = np.random.default_rng(seed)
    shape = (n, *predictor.input_shape)
    steps = predictor.pipeline.steps
    first = steps[0] if steps else None
    if predictor.value_range is not None:
        x = rng.uniform(*predictor.value_range, size=shape)
    elif isinstance(first, QuantileNormal) and first.quantiles is not None:
        q = np.asarray(first.quantiles)
        span = q[:, -1] - q[:, 0]
        x = rng.uniform(q[:, 0] - 0.1 * span, q[:, -1] + 0.1 * span, size=shape)
        x[: len(q[0])] = q.T  # the quantiles themselves: the interpolation's edge cases
    elif isinstance(first, Standardize) and first.mean is not None:
        x = np.asarray(first.mean) + np.asarray(first.std) * rng.standard_normal(shape)
    else:
        x = rng.standard_normal(shape)
    return x.astype(np.float32)


def compare(model: onnx.ModelProto | bytes, predictor: Predictor, x: np.ndarray,
            ) -> dict[str, float]:
    """Largest absolute and relative differences of the graph's main output from
    ``Predictor`` on x, and whether the labels agree (classifiers)."""
    sess = session(model)
    feed = {sess.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)}
    got = sess.run(None, feed)
    want = predictor.predict(x)
    diff = np.abs(got[0].astype(np.float64) - want)
    scale = np.maximum(np.abs(want.astype(np.float64)), 1.0)
    result = {"max_abs": float(diff.max()), "max_rel": float((diff / scale).max())}
    if predictor.task == "classification":
        # a different label is wrong unless its probability ties with the top one
        chosen = want[np.arange(len(want)), got[1]]
        result["label_mismatches"] = int(np.sum(
            (got[1] != want.argmax(axis=1)) & (chosen < want.max(axis=1) - 1e-6)))
    return result


def verify(model: onnx.ModelProto, artifact: Artifact) -> dict[str, float]:
    """Compare on probe inputs; ExportError if the graph is off by more than the tolerance."""
    predictor = Predictor(artifact)
    result = compare(model, predictor, probe_inputs(predictor))
    tolerance = TOLERANCE[predictor.task]
    if result["max_rel"] > tolerance or result.get("label_mismatches", 0):
        raise ExportError(f"{artifact.path}: the ONNX graph disagrees with the model "
                          f"(max difference {result['max_abs']:.3g}, tolerance {tolerance:g}); "
                          "nothing was written")
    return result
