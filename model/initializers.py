"""Seeded weight initialisers: He for ReLU layers, Glorot otherwise (Keras names)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import ConfigError

Initializer = Callable[[np.random.Generator, tuple[int, ...], int, int, np.dtype], np.ndarray]


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int,
                   dtype: np.dtype) -> np.ndarray:
    """U(-l, l) with l = sqrt(6 / (fan_in + fan_out)): keeps variance for tanh/sigmoid/linear."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def glorot_normal(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int,
                  dtype: np.dtype) -> np.ndarray:
    """Truncation-free normal with std sqrt(2 / (fan_in + fan_out))."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)


def he_uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int,
               dtype: np.dtype) -> np.ndarray:
    """U(-l, l) with l = sqrt(6 / fan_in): keeps variance through ReLU."""
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int,
              dtype: np.dtype) -> np.ndarray:
    """Normal with std sqrt(2 / fan_in)."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def zeros(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int,
          dtype: np.dtype) -> np.ndarray:
    """All zeros (biases)."""
    return np.zeros(shape, dtype=dtype)


INITIALIZERS: dict[str, Initializer] = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "zeros": zeros,
}

#: ``"auto"`` resolves to this when the layer feeds a ReLU, else to ``AUTO_OTHER``.
AUTO_RELU = "he_uniform"
AUTO_OTHER = "glorot_uniform"


def get_initializer(name: str) -> Initializer:
    """Look up an initialiser by its Keras name."""
    try:
        return INITIALIZERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown initializer {name!r}; expected one of {sorted(INITIALIZERS)} or 'auto'"
        ) from None
