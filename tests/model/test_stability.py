"""Softmax, cross-entropy and sigmoid stay finite and exact at extreme inputs."""

import numpy as np
import pytest

from model import Sigmoid, Softmax, SoftmaxCrossEntropy
from model.activations import softmax


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_on_huge_logits(dtype):
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, 1e4], [1e4, 1e4, 0.0]], dtype=dtype)
    labels = np.array([0, 1, 2])
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # no log(0), no 0/0
        value, grad = SoftmaxCrossEntropy()(logits.copy(), labels)
    assert np.isfinite(value) and np.isfinite(grad).all()
    # row 0 is right with certainty (loss 0); row 1 is off by 2e4; row 2 by 1e4 + log 2
    assert value == pytest.approx((0 + 2e4 + 1e4 + np.log(2)) / 3, rel=1e-6)
    expected = np.array([[0, 0, 0], [0, -1, 1], [0.5, 0.5, -1]]) / 3
    np.testing.assert_allclose(grad, expected, atol=1e-7)


def test_softmax_on_huge_logits():
    x = np.array([[1e4, 1e4 - 1, -1e4], [-1e30, 0.0, 1e30]], dtype=np.float32)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        p = softmax(x.copy())
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(p[0, :2], [1 / (1 + np.exp(-1)), 1 / (1 + np.e)], rtol=1e-6)
    layer = Softmax()
    layer.build((3,), np.random.default_rng(0), np.float32)
    layer.needs_input_grad = True
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        y = layer.forward(x)
        dx = layer.backward(np.ones_like(x))
    assert np.isfinite(y).all() and np.isfinite(dx).all()


def test_sigmoid_saturates_without_overflow():
    layer = Sigmoid()
    layer.build((4,), np.random.default_rng(0), np.float32)
    x = np.array([[-1e4, -100.0, 100.0, 1e4]], dtype=np.float32)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        y = layer.forward(x)
    np.testing.assert_array_equal(y, [[0, np.float32(np.exp(-100.0)), 1, 1]])
    np.testing.assert_array_equal(layer.infer(x.copy()), y)
