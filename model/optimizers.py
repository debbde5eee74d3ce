"""Gradient-descent optimizers with L2 weight decay and learning-rate schedules.

Updates run in place with preallocated temporaries: on an MLP step the optimizer touches
every parameter several times, and fresh temporaries would cost more than the arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from .errors import ConfigError
from .schedules import Constant, Schedule


class Param(NamedTuple):
    """One trainable array with its gradient; ``decayed`` says whether L2 decay applies."""

    name: str
    value: np.ndarray
    grad: np.ndarray
    decayed: bool


def part_bounds(size: int, part: int, parts: int) -> tuple[int, int]:
    """The flat range [lo, hi) of the ``part``-th of ``parts`` near-equal slices of size."""
    return size * part // parts, size * (part + 1) // parts


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1)  # parameters, gradients and states are contiguous: a view


class Optimizer:
    """Base class: ``step(params)`` applies one update to every parameter in place.

    ``learning_rate`` is a number or a ``Schedule`` of the step count. ``weight_decay`` adds
    ``weight_decay * w`` to the gradient of every decayed parameter (classic L2).
    The list passed to ``step`` must hold the same parameters, in the same order, each time.
    """

    def __init__(self, learning_rate: float | Schedule = 1e-3, weight_decay: float = 0.0) -> None:
        self.schedule = learning_rate if isinstance(learning_rate, Schedule) \
            else Constant(learning_rate)
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, int | float) \
                or not 0 <= weight_decay < 1:
            raise ConfigError(f"weight_decay must be in [0, 1), got {weight_decay!r}")
        self.weight_decay = float(weight_decay)
        self.iterations = 0
        self._state: list[dict[str, np.ndarray]] | None = None

    @property
    def lr(self) -> float:
        """The learning rate the next step will use."""
        return self.schedule(self.iterations)

    def step(self, params: Sequence[Param], parts: int = 1,
             run: Callable[[list[Callable[[], None]]], Any] | None = None) -> None:
        """Apply one update to every parameter.

        With ``parts`` > 1 every parameter is cut into that many flat slices, and ``run``
        is given one callable per slice set (e.g. to run them on threads at once). Updates
        are element-wise, so the result has the same bits either way.
        """
        if self._state is None:
            self._state = [self._init_state(p.value) for p in params]
        elif len(self._state) != len(params):
            raise ValueError("step() got a different parameter list than before")
        lr = self.lr
        jobs = [partial(self._update_part, params, lr, k, parts) for k in range(parts)]
        if run is None:
            for job in jobs:
                job()
        else:
            run(jobs)
        self.iterations += 1

    def _update_part(self, params: Sequence[Param], lr: float, part: int, parts: int) -> None:
        """Update the ``part``-th of ``parts`` flat slices of every parameter."""
        for p, state in zip(params, self._state, strict=True):
            lo, hi = part_bounds(p.value.size, part, parts)
            if lo == hi:
                continue
            if parts == 1:
                w, grad, part_state = p.value, p.grad, state
            else:
                w, grad = _flat(p.value)[lo:hi], _flat(p.grad)[lo:hi]
                part_state = {k: _flat(v)[lo:hi] for k, v in state.items()}
            if self.weight_decay and p.decayed:
                tmp = part_state["tmp"]
                np.multiply(w, self.weight_decay, out=tmp)
                grad += tmp
            self._update(w, grad, part_state, w.dtype.type(lr))

    def _init_state(self, value: np.ndarray) -> dict[str, np.ndarray]:
        return {"tmp": np.empty_like(value)}

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray],
                lr: np.floating) -> None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """Hyper-parameters, for the artifact manifest."""
        cfg = {k: v for k, v in vars(self).items() if not k.startswith("_")
               and k not in ("schedule", "iterations")}
        return {"type": type(self).__name__, "learning_rate": self.schedule.get_config(), **cfg}


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum:
    ``v = momentum * v + g; w -= lr * v`` (the PyTorch form)."""

    def __init__(self, learning_rate: float | Schedule = 1e-2, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(learning_rate, weight_decay)
        if not 0 <= momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum!r}")
        if nesterov and not momentum:
            raise ConfigError("nesterov needs a momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _init_state(self, value: np.ndarray) -> dict[str, np.ndarray]:
        state = super()._init_state(value)
        if self.momentum:
            state["velocity"] = np.zeros_like(value)
        return state

    def _update(self, w, g, state, lr) -> None:
        tmp = state["tmp"]
        if self.momentum:
            v = state["velocity"]
            v *= w.dtype.type(self.momentum)
            v += g
            if self.nesterov:
                np.multiply(v, w.dtype.type(self.momentum), out=tmp)
                tmp += g
                g = tmp
            else:
                g = v
        np.multiply(g, lr, out=tmp)
        w -= tmp


class RMSprop(Optimizer):
    """``v = rho * v + (1 - rho) * g^2; w -= lr * g / (sqrt(v) + epsilon)`` (Keras form)."""

    def __init__(self, learning_rate: float | Schedule = 1e-3, rho: float = 0.9,
                 epsilon: float = 1e-7, weight_decay: float = 0.0) -> None:
        super().__init__(learning_rate, weight_decay)
        if not 0 < rho < 1 or not epsilon > 0:
            raise ConfigError(f"need 0 < rho < 1 and epsilon > 0, got {rho!r}, {epsilon!r}")
        self.rho, self.epsilon = float(rho), float(epsilon)

    def _init_state(self, value: np.ndarray) -> dict[str, np.ndarray]:
        return {**super()._init_state(value), "v": np.zeros_like(value)}

    def _update(self, w, g, state, lr) -> None:
        v, tmp = state["v"], state["tmp"]
        t = w.dtype.type
        # v += (1 - rho) * (g^2 - v)  ==  rho * v + (1 - rho) * g^2
        np.multiply(g, g, out=tmp)
        tmp -= v
        tmp *= t(1.0 - self.rho)
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += t(self.epsilon)
        np.divide(g, tmp, out=tmp)
        tmp *= lr
        w -= tmp


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction folded into the step size:
    ``w -= lr_t * m / (sqrt(v) + epsilon_t)``, exactly the textbook update."""

    def __init__(self, learning_rate: float | Schedule = 1e-3, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, weight_decay: float = 0.0) -> None:
        super().__init__(learning_rate, weight_decay)
        if not (0 <= beta_1 < 1 and 0 <= beta_2 < 1 and epsilon > 0):
            raise ConfigError("need 0 <= beta_1, beta_2 < 1 and epsilon > 0")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _init_state(self, value: np.ndarray) -> dict[str, np.ndarray]:
        return {**super()._init_state(value), "m": np.zeros_like(value),
                "v": np.zeros_like(value)}

    def _update(self, w, g, state, lr) -> None:
        m, v, tmp = state["m"], state["v"], state["tmp"]
        t = w.dtype.type
        step = self.iterations + 1
        # mhat / (sqrt(vhat) + eps) == m * c / (sqrt(v) + eps * sqrt(1 - b2^t)),
        # with c = sqrt(1 - b2^t) / (1 - b1^t)
        root = np.sqrt(1.0 - self.beta_2 ** step)
        lr_t = t(float(lr) * root / (1.0 - self.beta_1 ** step))
        eps_t = t(self.epsilon * root)
        np.subtract(g, m, out=tmp)
        tmp *= t(1.0 - self.beta_1)
        m += tmp
        np.multiply(g, g, out=tmp)
        tmp -= v
        tmp *= t(1.0 - self.beta_2)
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += eps_t
        np.divide(m, tmp, out=tmp)
        tmp *= lr_t
        w -= tmp


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD, "momentum": SGD, "rmsprop": RMSprop, "adam": Adam,
}


def make_optimizer(name: str, learning_rate: float | Schedule, weight_decay: float = 0.0,
                   **kwargs: Any) -> Optimizer:
    """Build an optimizer by its command-line name (sgd, momentum, rmsprop, adam)."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose from {sorted(OPTIMIZERS)}")
    if name == "momentum":
        kwargs.setdefault("momentum", 0.9)
    return OPTIMIZERS[name](learning_rate=learning_rate, weight_decay=weight_decay, **kwargs)
