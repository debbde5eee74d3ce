"""Loss functions: each returns (mean loss, gradient of the mean loss w.r.t. predictions)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ConfigError


class Loss:
    """Base class; ``loss(pred, target) -> (value, dL/dpred)``."""

    name = "loss"

    def __call__(self, pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"type": type(self).__name__}


class MeanSquaredError(Loss):
    """mean((pred - target)^2) over all elements; pred and target of the same shape."""

    name = "mse"

    def __call__(self, pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        target = np.asarray(target, dtype=pred.dtype).reshape(pred.shape)
        diff = pred - target
        value = float(np.mean(np.square(diff, dtype=np.float64)))
        diff *= pred.dtype.type(2.0 / diff.size)
        return value, diff


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis via log-sum-exp: finite for any finite logits."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return shifted


class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of softmax(logits) against class labels, from the logits.

    ``target`` is either integer labels of shape (n,) or class probabilities (n, classes).
    The gradient ``(softmax(logits) - target) / n`` never forms log(0), so logits of 1e4
    give finite values. ``label_smoothing`` mixes the target with the uniform distribution.
    """

    name = "cross_entropy"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def get_config(self) -> dict[str, Any]:
        return {"type": "SoftmaxCrossEntropy", "label_smoothing": self.label_smoothing}

    def _target(self, target: np.ndarray, n: int, classes: int, dtype: np.dtype) -> np.ndarray:
        target = np.asarray(target)
        if target.ndim == 1:
            if not np.issubdtype(target.dtype, np.integer):
                raise ValueError("integer class labels expected for 1-D targets")
            if target.size and (target.min() < 0 or target.max() >= classes):
                raise ValueError(
                    f"labels must be in [0, {classes}), got {target.min()}..{target.max()}")
            onehot = np.zeros((n, classes), dtype=dtype)
            onehot[np.arange(n), target] = 1
        else:
            onehot = target.astype(dtype, copy=True)
        if self.label_smoothing:
            onehot *= dtype.type(1.0 - self.label_smoothing)
            onehot += dtype.type(self.label_smoothing / classes)
        return onehot

    def __call__(self, logits: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        n, classes = logits.shape
        onehot = self._target(target, n, classes, logits.dtype)
        logp = log_softmax(logits)
        value = float(-np.sum(onehot * logp, dtype=np.float64) / n)
        grad = np.exp(logp, out=logp)  # softmax, reusing the array
        grad -= onehot
        grad *= logits.dtype.type(1.0 / n)
        return value, grad


LOSSES: dict[str, type[Loss]] = {"MeanSquaredError": MeanSquaredError,
                                 "SoftmaxCrossEntropy": SoftmaxCrossEntropy}
