"""The layer contract (forward, backward, params/grads, config) and the core layers.

Arrays are batch-first. Images are NHWC: ``(batch, height, width, channels)``.
A layer computes in the dtype of its parameters (float32 in the product, float64 in the
gradient checks).

Two paths:
- ``forward``/``backward`` train: they keep what backward needs and reuse preallocated
  buffers between steps, so an array a layer returns is only valid until its next call.
- ``infer`` predicts: it keeps nothing, so it is safe to call from several threads, and
  its results for a row do not depend on which other rows share the batch (see
  ``deterministic_matmul``). It may overwrite its input, which ``Sequential.infer``
  always passes as a private array.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from . import initializers
from .errors import ConfigError

Shape = tuple[int, ...]

LAYER_TYPES: dict[str, type[Layer]] = {}


def register(cls: type[Layer]) -> type[Layer]:
    """Make a layer class known to ``layer_from_config`` under its class name."""
    LAYER_TYPES[cls.__name__] = cls
    return cls


def layer_from_config(config: Mapping[str, Any]) -> Layer:
    """Rebuild a layer from ``{"type": name, **arguments}``; raise ConfigError if invalid."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"a layer config must be an object, got {type(config).__name__}")
    args = dict(config)
    type_name = args.pop("type", None)
    if not isinstance(type_name, str):
        raise ConfigError(f"layer config {dict(config)!r} has no 'type' string")
    cls = LAYER_TYPES.get(type_name)
    if cls is None:
        raise ConfigError(f"unknown layer type {type_name!r}; known types: {sorted(LAYER_TYPES)}")
    try:
        return cls(**args)
    except TypeError as exc:
        raise ConfigError(f"bad arguments for layer {type_name}: {exc}") from None


def deterministic_matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w`` for x of shape (n, k), as one matrix-vector product per row.

    OpenBLAS chooses GEMM kernels and thread splits by matrix size, so in a plain GEMM the
    bits of a row's result depend on the batch it came in and on the thread count. NumPy
    runs a stacked (n, 1, k) matmul as n GEMV calls in C: every row then gets the same bits
    alone or in any batch, with one BLAS thread or two (tests/model/test_predictor.py), and
    a single row, the commonest request a server sees, costs one GEMV (784x512: 40 us,
    against 190 us for an 8-row GEMM, which repacks the weights on every call).
    """
    n, k = x.shape
    return np.matmul(x.reshape(n, 1, k), w).reshape(n, w.shape[1])


def check_positive_int(value: Any, what: str) -> int:
    """Return ``value`` if it is a positive int (not bool), else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


class Layer:
    """Base class. Subclasses set ``params`` in ``_create_params`` and implement the passes."""

    #: names of parameters that L2 weight decay applies to (kernels; never biases)
    decayed: ClassVar[tuple[str, ...]] = ()
    #: True if forward returns a buffer of the layer's own that its backward does not read,
    #: so the next layer may overwrite it
    owns_output: ClassVar[bool] = False

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        #: False for layers whose input gradient nobody needs (the first trainable layer)
        self.needs_input_grad = True
        self._buffers: dict[str, np.ndarray] = {}

    # -- construction -------------------------------------------------------------------
    def build(self, input_shape: Shape, rng: np.random.Generator,
              dtype: np.dtype | type = np.float32, feeds_relu: bool = False) -> Shape:
        """Fix the per-sample input shape, create parameters, return the output shape."""
        self.input_shape = tuple(int(d) for d in input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        self._create_params(rng, np.dtype(dtype), feeds_relu)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._buffers = {}
        return self.output_shape

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """Per-sample output shape for a per-sample input shape (identity by default)."""
        return input_shape

    def _create_params(self, rng: np.random.Generator, dtype: np.dtype, feeds_relu: bool) -> None:
        """Create ``self.params``; parameter-free layers keep the default."""

    def get_config(self) -> dict[str, Any]:
        """``{"type": class name, **constructor arguments}``: enough to rebuild the layer."""
        return {"type": type(self).__name__}

    # -- computation --------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Training forward pass over a batch; keeps what ``backward`` needs."""
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """Given dL/dy, fill ``grads`` and return dL/dx (None if not ``needs_input_grad``).

        May overwrite ``dy``.
        """
        raise NotImplementedError

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Inference pass: no state kept, batch-size independent, may overwrite ``x``."""
        raise NotImplementedError

    def replica(self) -> Layer:
        """A twin for another thread of a data-parallel step (training/parallel.py).

        The twin reads the same parameter arrays (updates reach it at once) but owns its
        gradients, buffers and what a forward pass keeps, so two threads may train on two
        shards of a batch at the same time.
        """
        twin = copy.copy(self)
        twin.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        twin._buffers = {}
        return twin

    # -- helpers ------------------------------------------------------------------------
    def _buffer(self, key: str, shape: Shape, dtype: np.dtype) -> np.ndarray:
        """A reusable training buffer of ``shape``: a view of the largest one allocated.

        Avoids an allocation (and, for large arrays, fresh page faults) on every step.
        """
        buf = self._buffers.get(key)
        if (buf is None or buf.dtype != dtype or buf.shape[1:] != tuple(shape[1:])
                or buf.shape[0] < shape[0]):
            buf = np.empty(shape, dtype=dtype)
            self._buffers[key] = buf
        return buf[: shape[0]]

    def count_params(self) -> int:
        """Number of scalar parameters."""
        return int(sum(p.size for p in self.params.values()))

    def __repr__(self) -> str:
        """Keras-like: only arguments that differ from their defaults, e.g. ``Dense(64)``."""
        params = inspect.signature(type(self).__init__).parameters
        parts = []
        for key, value in self.get_config().items():
            param = params.get(key)
            if key == "type" or param is None:
                continue
            default = param.default
            if isinstance(default, int | float) and not isinstance(default, bool) \
                    and isinstance(value, list) and len(set(value)) == 1 and value[0] == default:
                continue  # strides=[1, 1] with default 1
            if value == default:
                continue
            shown = repr(value[0] if isinstance(value, list) and len(set(value)) == 1 else value)
            parts.append(shown if param.default is inspect.Parameter.empty else f"{key}={shown}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _kernel_init_name(name: str, feeds_relu: bool) -> str:
    if name == "auto":
        return initializers.AUTO_RELU if feeds_relu else initializers.AUTO_OTHER
    return name


@register
class Dense(Layer):
    """Fully connected layer: ``y = x @ W + b``, x of shape (n, in), W (in, units)."""

    decayed = ("W",)
    owns_output = True

    def __init__(self, units: int, use_bias: bool = True, kernel_initializer: str = "auto",
                 bias_initializer: str = "zeros") -> None:
        super().__init__()
        self.units = check_positive_int(units, "Dense units")
        self.use_bias = bool(use_bias)
        if kernel_initializer != "auto":
            initializers.get_initializer(kernel_initializer)
        initializers.get_initializer(bias_initializer)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def get_config(self) -> dict[str, Any]:
        return {"type": "Dense", "units": self.units, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer}

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ConfigError(f"Dense expects flat inputs (features,), got {input_shape}; "
                              "put a Flatten layer before it")
        return (self.units,)

    def _create_params(self, rng: np.random.Generator, dtype: np.dtype, feeds_relu: bool) -> None:
        fan_in = self.input_shape[0]
        init = initializers.get_initializer(_kernel_init_name(self.kernel_initializer, feeds_relu))
        self.params = {"W": init(rng, (fan_in, self.units), fan_in, self.units, dtype)}
        if self.use_bias:
            binit = initializers.get_initializer(self.bias_initializer)
            self.params["b"] = binit(rng, (self.units,), fan_in, self.units, dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        y = self._buffer("y", (x.shape[0], self.units), x.dtype)
        np.matmul(x, self.params["W"], out=y)
        if self.use_bias:
            y += self.params["b"]
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        x = self._x
        np.matmul(x.T, dy, out=self.grads["W"])
        if self.use_bias:
            np.sum(dy, axis=0, out=self.grads["b"])
        if not self.needs_input_grad:
            return None
        dx = self._buffer("dx", x.shape, dy.dtype)
        np.matmul(dy, self.params["W"].T, out=dx)
        return dx

    def infer(self, x: np.ndarray) -> np.ndarray:
        y = deterministic_matmul(x, self.params["W"])
        if self.use_bias:
            y += self.params["b"]
        return y


@register
class Flatten(Layer):
    """Reshape each sample to one dimension: (n, d1, d2, ...) -> (n, d1*d2*...)."""

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (int(np.prod(input_shape)),)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        return dy.reshape((dy.shape[0], *self.input_shape)) if self.needs_input_grad else None

    def infer(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], -1)


@register
class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (e.g. (28, 28) -> (28, 28, 1) before Conv2D)."""

    def __init__(self, target_shape: list[int] | tuple[int, ...]) -> None:
        super().__init__()
        if not isinstance(target_shape, list | tuple) or not target_shape:
            raise ConfigError(
                f"Reshape target_shape must be a non-empty list, got {target_shape!r}")
        self.target_shape = tuple(check_positive_int(d, "Reshape dimension") for d in target_shape)

    def get_config(self) -> dict[str, Any]:
        return {"type": "Reshape", "target_shape": list(self.target_shape)}

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if int(np.prod(input_shape)) != int(np.prod(self.target_shape)):
            raise ConfigError(f"cannot reshape {input_shape} to {self.target_shape}")
        return self.target_shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.reshape((x.shape[0], *self.target_shape))

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        return dy.reshape((dy.shape[0], *self.input_shape)) if self.needs_input_grad else None

    def infer(self, x: np.ndarray) -> np.ndarray:
        return x.reshape((x.shape[0], *self.target_shape))


@register
class Dropout(Layer):
    """Inverted dropout: in training zero a ``rate`` share of inputs and scale the rest by
    1 / (1 - rate), so inference is the identity."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < 1:
            raise ConfigError(f"Dropout rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.rng = np.random.default_rng(0)

    def get_config(self) -> dict[str, Any]:
        return {"type": "Dropout", "rate": self.rate}

    def _create_params(self, rng: np.random.Generator, dtype: np.dtype, feeds_relu: bool) -> None:
        # an independent stream per layer, derived from the network's seed
        self.rng = np.random.default_rng(int(rng.integers(2**63)))

    def replica(self) -> Layer:
        twin = super().replica()
        twin.rng = self.rng.spawn(1)[0]  # its own mask stream, derived from this one's
        return twin

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.rate == 0.0:
            self._mask = None
            return x
        # Keep a value when a random integer reaches rate * 2^bits: raw generator bytes and
        # one comparison cost a fraction of drawing a float per value. One byte a value
        # when the rate is a multiple of 1/256 (0.25, 0.5, ...), else two: the rate is
        # thereby rounded to a multiple of 2^-16.
        kind = np.uint8 if (self.rate * 256).is_integer() else np.uint16
        scale = 1 << (8 * np.dtype(kind).itemsize)
        bits = np.frombuffer(self.rng.bytes(np.dtype(kind).itemsize * x.size),
                             dtype=kind).reshape(x.shape)
        keep = self._buffer("keep", x.shape, np.dtype(bool))
        np.greater_equal(bits, kind(min(round(self.rate * scale), scale - 1)), out=keep)
        mask = self._buffer("mask", x.shape, x.dtype)
        np.multiply(keep, x.dtype.type(1.0 / (1.0 - self.rate)), out=mask)
        self._mask = mask
        y = self._buffer("y", x.shape, x.dtype)
        np.multiply(x, mask, out=y)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        if not self.needs_input_grad:
            return None
        if self._mask is not None:
            dy *= self._mask
        return dy

    def infer(self, x: np.ndarray) -> np.ndarray:
        return x
