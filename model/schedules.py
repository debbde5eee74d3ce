"""Learning-rate schedules: callables from the optimizer's step count to a learning rate."""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError


class Schedule:
    """Base class: ``schedule(step) -> learning rate`` for step = 0, 1, 2, ..."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"type": type(self).__name__, **vars(self)}


class Constant(Schedule):
    """The same rate at every step."""

    def __init__(self, lr: float) -> None:
        self.lr = _positive(lr, "lr")

    def __call__(self, step: int) -> float:
        return self.lr


class StepDecay(Schedule):
    """lr * gamma ** (step // step_size): drop by ``gamma`` every ``step_size`` steps."""

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        self.lr = _positive(lr, "lr")
        if step_size < 1:
            raise ConfigError(f"step_size must be >= 1, got {step_size!r}")
        if not 0 < gamma <= 1:
            raise ConfigError(f"gamma must be in (0, 1], got {gamma!r}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)


class CosineDecay(Schedule):
    """Linear warm-up over ``warmup_steps``, then cosine from lr down to ``lr * alpha`` at
    ``decay_steps``; constant after that (as Keras' CosineDecay)."""

    def __init__(self, lr: float, decay_steps: int, alpha: float = 0.0,
                 warmup_steps: int = 0) -> None:
        self.lr = _positive(lr, "lr")
        if decay_steps < 1 or warmup_steps < 0 or warmup_steps >= decay_steps:
            raise ConfigError(f"need 0 <= warmup_steps < decay_steps, got {warmup_steps!r}, "
                              f"{decay_steps!r}")
        if not 0 <= alpha <= 1:
            raise ConfigError(f"alpha must be in [0, 1], got {alpha!r}")
        self.decay_steps, self.alpha, self.warmup_steps = int(decay_steps), float(alpha), \
            int(warmup_steps)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = self.decay_steps - self.warmup_steps
        progress = min(step - self.warmup_steps, span) / span
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.lr * (self.alpha + (1 - self.alpha) * cosine)


def _positive(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 \
            or not math.isfinite(value):
        raise ConfigError(f"{what} must be a positive number, got {value!r}")
    return float(value)
