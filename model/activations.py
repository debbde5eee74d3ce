"""Element-wise and softmax activation layers (no parameters)."""

from __future__ import annotations

import numpy as np

from .layers import Layer, register


@register
class ReLU(Layer):
    """max(x, 0)."""

    def __init__(self) -> None:
        super().__init__()
        #: set by Sequential when the previous layer's output may be overwritten
        self.inplace = False

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = x if self.inplace else self._buffer("y", x.shape, x.dtype)
        np.maximum(x, 0, out=y)
        self._y = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if not self.needs_input_grad:
            return None
        positive = self._buffer("positive", dy.shape, np.dtype(bool))
        np.greater(self._y, 0, out=positive)
        np.multiply(dy, positive, out=dy)
        return dy

    def infer(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0, out=x)


def _sigmoid(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow: uses exp(-|x|), which is always <= 1."""
    e = np.exp(-np.abs(x))
    np.divide(1.0, 1.0 + e, out=out)
    np.multiply(out, e, out=e)  # e / (1 + e) = sigmoid(-|x|)
    np.copyto(out, e, where=x < 0)
    return out


@register
class Sigmoid(Layer):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = _sigmoid(x, self._buffer("y", x.shape, x.dtype))
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if not self.needs_input_grad:
            return None
        y = self._y
        dy *= y
        dy *= 1 - y
        return dy

    def infer(self, x: np.ndarray) -> np.ndarray:
        return _sigmoid(x, np.empty_like(x))


@register
class Tanh(Layer):
    """Hyperbolic tangent."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = self._buffer("y", x.shape, x.dtype)
        np.tanh(x, out=y)
        self._y = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if not self.needs_input_grad:
            return None
        dy *= 1 - self._y * self._y
        return dy

    def infer(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x, out=x)


def softmax(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Softmax over the last axis, shifted by the row maximum so exp never overflows."""
    out = np.subtract(x, x.max(axis=-1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=-1, keepdims=True)
    return out


@register
class Softmax(Layer):
    """Softmax over the last axis. To train a classifier, end the network with logits and
    use ``SoftmaxCrossEntropy``, which is exact and stable; this layer is for outputs."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = softmax(x, self._buffer("y", x.shape, x.dtype))
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if not self.needs_input_grad:
            return None
        y = self._y
        inner = np.sum(dy * y, axis=-1, keepdims=True)
        dy -= inner
        dy *= y
        return dy

    def infer(self, x: np.ndarray) -> np.ndarray:
        return softmax(x, out=x)
