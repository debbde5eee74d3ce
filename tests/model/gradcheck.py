"""Central-difference gradient checks in float64, shared by the model tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from model.layers import Layer

EPS = 1e-6


def numeric_grad(f: Callable[[], float], arr: np.ndarray, index: tuple[int, ...]) -> float:
    """d f / d arr[index] by central differences (arr is perturbed in place and restored)."""
    old = arr[index]
    arr[index] = old + EPS
    up = f()
    arr[index] = old - EPS
    down = f()
    arr[index] = old
    return (up - down) / (2 * EPS)


def sample_indices(arr: np.ndarray, rng: np.random.Generator, k: int = 40) -> list[tuple]:
    """Up to k distinct indices of arr (all of them for small arrays)."""
    flat = rng.permutation(arr.size)[:k]
    return [np.unravel_index(i, arr.shape) for i in flat]


def check_layer(layer: Layer, x: np.ndarray, rng: np.random.Generator,
                reseed: Callable[[], None] = lambda: None) -> None:
    """Assert backward's input and parameter gradients match finite differences.

    The scalar is L = sum(forward(x) * w) for a fixed random w, so dL/dy = w.
    ``reseed`` runs before every forward (e.g. to fix a dropout mask).
    """
    layer.needs_input_grad = True
    reseed()
    y = layer.forward(x)
    w = rng.standard_normal(y.shape)

    def loss() -> float:
        reseed()
        return float(np.sum(layer.forward(x) * w))

    reseed()
    layer.forward(x)
    dx = np.array(layer.backward(w.copy()))
    analytic = {k: g.copy() for k, g in layer.grads.items()}
    assert dx.shape == x.shape
    for idx in sample_indices(x, rng):
        np.testing.assert_allclose(dx[idx], numeric_grad(loss, x, idx), rtol=1e-5, atol=1e-7,
                                   err_msg=f"{layer!r} input grad at {idx}")
    for name, param in layer.params.items():
        for idx in sample_indices(param, rng):
            np.testing.assert_allclose(analytic[name][idx], numeric_grad(loss, param, idx),
                                       rtol=1e-5, atol=1e-7,
                                       err_msg=f"{layer!r} grad of {name} at {idx}")
