"""``Sequential``: a stack of layers with training passes, fast inference and a config."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .activations import ReLU
from .conv import MaxPool2D
from .errors import ConfigError
from .layers import Layer, Shape, layer_from_config, register
from .losses import Loss
from .optimizers import Optimizer, Param

#: Rows per chunk on the inference path: bounds memory for large inputs.
INFER_CHUNK_ROWS = 4096


class Sequential:
    """Layers applied in order to batches of shape (n, *input_shape).

    >>> net = Sequential([Dense(64), ReLU(), Dense(1)], input_shape=(13,)).build(seed=0)
    """

    def __init__(self, layers: Sequence[Layer], input_shape: Sequence[int] | None = None) -> None:
        if not layers:
            raise ConfigError("a network needs at least one layer")
        self.layers = list(layers)
        self.input_shape: Shape | None = tuple(input_shape) if input_shape is not None else None
        self.output_shape: Shape | None = None
        self.dtype = np.dtype(np.float32)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Sequential:
        """Rebuild (unbuilt) from ``{"input_shape": [...], "layers": [{"type": ...}, ...]}``."""
        layers = config.get("layers")
        if not isinstance(layers, list):
            raise ConfigError("network config needs a 'layers' list")
        shape = config.get("input_shape")
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise ConfigError(f"input_shape must be a list of positive integers, got {shape!r}")
        return cls([layer_from_config(c) for c in layers], input_shape=shape)

    def get_config(self) -> dict[str, Any]:
        """Architecture as data: the input shape and one ``{"type": ...}`` object per layer."""
        return {"input_shape": list(self.input_shape or ()),
                "layers": [layer.get_config() for layer in self.layers]}

    def build(self, input_shape: Sequence[int] | None = None, seed: int = 0,
              dtype: np.dtype | type = np.float32) -> Sequential:
        """Create all parameters from ``seed``; kernels feeding a ReLU get He init."""
        if input_shape is not None:
            self.input_shape = tuple(int(d) for d in input_shape)
        if self.input_shape is None:
            raise ConfigError("build() needs an input_shape")
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        shape = self.input_shape
        for i, layer in enumerate(self.layers):
            nxt = self.layers[i + 1] if i + 1 < len(self.layers) else None
            try:
                shape = layer.build(shape, rng, self.dtype, feeds_relu=isinstance(nxt, ReLU))
            except ConfigError as exc:
                raise ConfigError(f"layer {i} ({type(layer).__name__}): {exc}") from None
        self.output_shape = shape
        # Nothing before the first trainable layer needs an input gradient.
        needed = False
        for layer in self.layers:
            layer.needs_input_grad = needed
            needed = needed or bool(layer.params)
        self._plan = self._execution_order()
        return self

    def _execution_order(self) -> list[Layer]:
        """The layers in the order they run, which may differ from the config's.

        ReLU then MaxPool2D runs as MaxPool2D then ReLU: max commutes with the monotone
        ReLU, so values and gradients are identical, on a quarter of the elements. A ReLU
        after a layer that returns a buffer of its own (Dense, Conv2D, MaxPool2D) works in
        place on it.
        """
        order = list(self.layers)
        i = 0
        while i < len(order) - 1:
            if type(order[i]) is ReLU and type(order[i + 1]) is MaxPool2D:
                order[i], order[i + 1] = order[i + 1], order[i]
                i += 2
            else:
                i += 1
        for prev, layer in zip(order, order[1:], strict=False):
            if isinstance(layer, ReLU):
                layer.inplace = prev.owns_output
        if isinstance(order[0], ReLU):
            order[0].inplace = False
        return order

    def replica(self) -> Sequential:
        """A twin sharing this network's parameter arrays, with gradients, buffers and
        dropout streams of its own: what a second thread trains a shard of the batch with."""
        self._check_built()
        twin = copy.copy(self)
        twin.layers = [layer.replica() for layer in self.layers]
        twins = {id(layer): t for layer, t in zip(self.layers, twin.layers, strict=True)}
        twin._plan = [twins[id(layer)] for layer in self._plan]
        return twin

    @property
    def built(self) -> bool:
        return self.output_shape is not None

    # -- parameters ---------------------------------------------------------------------
    def parameters(self) -> list[Param]:
        """Every trainable array with its gradient, named ``"<layer index>.<param>"``."""
        return [Param(f"{i}.{k}", v, layer.grads[k], k in layer.decayed)
                for i, layer in enumerate(self.layers) for k, v in layer.params.items()]

    def get_weights(self) -> dict[str, np.ndarray]:
        """Parameter arrays by name (the arrays themselves, not copies)."""
        return {p.name: p.value for p in self.parameters()}

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Copy arrays into the parameters; names and shapes must match exactly."""
        own = self.get_weights()
        missing = sorted(set(own) - set(weights))
        extra = sorted(set(weights) - set(own))
        if missing or extra:
            raise ConfigError(f"weights do not match the architecture: missing {missing}, "
                              f"unexpected {extra}")
        for name, value in own.items():
            new = np.asarray(weights[name])
            if new.shape != value.shape:
                raise ConfigError(f"weight {name!r} has shape {new.shape}, the architecture "
                                  f"needs {value.shape}")
            value[...] = new

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def summary(self) -> str:
        """A table of layers, output shapes and parameter counts."""
        rows = [("#", "layer", "output shape", "params")]
        for i, layer in enumerate(self.layers):
            rows.append((str(i), repr(layer), str(layer.output_shape), f"{layer.count_params():,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
                 for r in rows]
        rule = "-" * len(lines[0])
        return "\n".join([f"Sequential, input shape {self.input_shape}", rule, lines[0], rule,
                          *lines[1:], rule, f"total parameters: {self.count_params():,}"])

    def __repr__(self) -> str:
        return f"Sequential({self.layers!r}, input_shape={self.input_shape})"

    # -- computation --------------------------------------------------------------------
    def _check_built(self) -> None:
        if not self.built:
            raise ConfigError("the network is not built; call build() first")

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """Forward pass; ``training=False`` is the inference path (no dropout, no caches)."""
        if not training:
            return self.infer(x)
        self._check_built()
        for layer in self._plan:
            x = layer.forward(x)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """Back-propagate dL/doutput through the last forward pass, filling every grads.

        Returns dL/dinput if the first layer computes it (see ``needs_input_grad``)."""
        for layer in reversed(self._plan):
            dy = layer.backward(dy)
            if dy is None:
                return None
        return dy

    def infer(self, x: np.ndarray, chunk_rows: int = INFER_CHUNK_ROWS) -> np.ndarray:
        """Inference in the network's dtype, in chunks; row results never depend on the batch.

        x: (n, *input_shape). Returns (n, *output_shape). Thread-safe: no state is kept.
        """
        self._check_built()
        x = np.asarray(x)
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"expected input of shape (n, {', '.join(map(str, self.input_shape))})"
                             f", got {x.shape}")
        out = np.empty((x.shape[0], *self.output_shape), dtype=self.dtype)
        for start in range(0, x.shape[0], chunk_rows):
            # a private copy, so layers may work in place
            h = np.array(x[start:start + chunk_rows], dtype=self.dtype, copy=True)
            for layer in self._plan:
                h = layer.infer(h)
            out[start:start + chunk_rows] = h
        return out

    predict = infer

    def train_step(self, x: np.ndarray, y: np.ndarray, loss: Loss, optimizer: Optimizer) -> float:
        """One step of mini-batch gradient descent; returns the batch loss."""
        pred = self.forward(x, training=True)
        value, grad = loss(pred, y)
        self.backward(grad)
        optimizer.step(self.parameters())
        return value


@register
class Average(Layer):
    """The mean of several member networks' outputs: an ensemble as one layer.

    ``members`` is a list of layer-config lists, one per member; each member sees the same
    input. Members are usually trained separately and joined with ``ensemble``.
    """

    def __init__(self, members: Sequence[Sequence[Mapping[str, Any]]]) -> None:
        super().__init__()
        if not isinstance(members, list | tuple) or len(members) < 1 or not all(
                isinstance(m, list | tuple) and m for m in members):
            raise ConfigError("Average needs a non-empty list of members, each a list of layers")
        self.members = [Sequential([layer_from_config(c) for c in m]) for m in members]

    def get_config(self) -> dict[str, Any]:
        return {"type": "Average", "members": [m.get_config()["layers"] for m in self.members]}

    def __repr__(self) -> str:
        return f"Average({len(self.members)} x {self.members[0].layers!r})"

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return self.output_shape or input_shape

    def _create_params(self, rng: np.random.Generator, dtype: np.dtype, feeds_relu: bool) -> None:
        shapes = set()
        for m in self.members:
            m.build(self.input_shape, seed=int(rng.integers(2**31)), dtype=dtype)
            shapes.add(m.output_shape)
        if len(shapes) != 1:
            raise ConfigError(f"Average members disagree on their output shape: {sorted(shapes)}")
        self.output_shape = shapes.pop()
        members = [m.parameters() for m in self.members]
        self.params = {f"{j}.{p.name}": p.value for j, ps in enumerate(members) for p in ps}
        self.decayed = tuple(f"{j}.{p.name}" for j, ps in enumerate(members) for p in ps
                             if p.decayed)

    def build(self, input_shape: Shape, rng: np.random.Generator,
              dtype: np.dtype | type = np.float32, feeds_relu: bool = False) -> Shape:
        self.input_shape = tuple(int(d) for d in input_shape)
        self._create_params(rng, np.dtype(dtype), feeds_relu)
        # gradients live in the members' layers; share them instead of copying
        self.grads = {f"{j}.{p.name}": p.grad for j, m in enumerate(self.members)
                      for p in m.parameters()}
        return self.output_shape

    def count_params(self) -> int:
        return sum(m.count_params() for m in self.members)

    def replica(self) -> Layer:
        twin = copy.copy(self)
        twin.members = [m.replica() for m in self.members]
        twin.grads = {f"{j}.{p.name}": p.grad for j, m in enumerate(twin.members)
                      for p in m.parameters()}
        twin._buffers = {}
        return twin

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = self._buffer("y", (x.shape[0], *self.output_shape), x.dtype)
        out.fill(0)
        for m in self.members:
            out += m.forward(x)
        out *= x.dtype.type(1.0 / len(self.members))
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        share = dy * dy.dtype.type(1.0 / len(self.members))
        dx = None
        for m in self.members:
            if self.needs_input_grad:
                for layer in m.layers:
                    layer.needs_input_grad = True
            d = m.backward(share.copy())
            if self.needs_input_grad:
                dx = np.array(d) if dx is None else dx + d
        return dx

    def infer(self, x: np.ndarray) -> np.ndarray:
        total = None
        for m in self.members:
            out = m.infer(x)  # infer copies x, so every member sees it unchanged
            total = out if total is None else total + out
        total *= total.dtype.type(1.0 / len(self.members))
        return total


def ensemble(networks: Sequence[Sequential]) -> Sequential:
    """One network averaging the outputs of built networks of the same input shape
    (their weights are copied)."""
    nets = list(networks)
    if not nets or any(not n.built for n in nets):
        raise ConfigError("ensemble() needs built networks")
    shape = nets[0].input_shape
    if any(n.input_shape != shape for n in nets):
        raise ConfigError("ensemble members must share the input shape")
    joined = Sequential([Average([n.get_config()["layers"] for n in nets])], input_shape=shape)
    joined.build(dtype=nets[0].dtype)
    joined.set_weights({f"0.{j}.{k}": v for j, n in enumerate(nets)
                        for k, v in n.get_weights().items()})
    return joined
