"""Each optimizer minimises a quadratic; Adam matches the textbook; decay and schedules."""

import numpy as np
import pytest

from model import SGD, Adam, CosineDecay, RMSprop, StepDecay, make_optimizer
from model.errors import ConfigError
from model.optimizers import Param

A = np.diag([1.0, 4.0, 9.0])
TARGET = np.array([1.0, -2.0, 0.5])


def quadratic_grad(w):
    """f(w) = 0.5 (w - t)^T A (w - t); gradient A (w - t)."""
    return A @ (w - TARGET)


def f(w):
    return 0.5 * (w - TARGET) @ A @ (w - TARGET)


@pytest.mark.parametrize("opt", [
    SGD(0.05), SGD(0.02, momentum=0.9), SGD(0.02, momentum=0.9, nesterov=True),
    RMSprop(0.01), Adam(0.05), make_optimizer("momentum", 0.02),
], ids=repr)
def test_reduces_a_quadratic(opt):
    w = np.zeros(3)
    g = np.zeros(3)
    start = f(w)
    for _ in range(500):
        g[...] = quadratic_grad(w)
        opt.step([Param("w", w, g, True)])
    assert f(w) < 1e-3 * start
    np.testing.assert_allclose(w, TARGET, atol=0.05)


def test_adam_one_step_matches_the_textbook():
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(3)]
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    opt = Adam(lr, b1, b2, eps)
    w = w0.copy()
    m = v = np.zeros(5)
    expected = w0.copy()
    for t, grad in enumerate(grads, start=1):
        opt.step([Param("w", w, grad.copy(), True)])
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad ** 2
        mhat, vhat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        expected = expected - lr * mhat / (np.sqrt(vhat) + eps)
        np.testing.assert_allclose(w, expected, rtol=1e-12, atol=1e-15)


def test_rmsprop_one_step_matches_keras():
    w, g = np.array([1.0, -1.0]), np.array([0.5, -2.0])
    RMSprop(0.1, rho=0.9, epsilon=1e-7).step([Param("w", w, g.copy(), True)])
    v = 0.1 * g ** 2
    np.testing.assert_allclose(w, np.array([1.0, -1.0]) - 0.1 * g / (np.sqrt(v) + 1e-7))


def test_weight_decay_applies_only_to_decayed_params():
    kernel, bias = np.ones(2), np.ones(2)
    SGD(0.1, weight_decay=0.5).step([Param("W", kernel, np.zeros(2), True),
                                     Param("b", bias, np.zeros(2), False)])
    np.testing.assert_allclose(kernel, 1 - 0.1 * 0.5)
    np.testing.assert_array_equal(bias, 1.0)


def test_float32_parameters_stay_float32():
    w = np.ones(4, dtype=np.float32)
    g = np.full(4, 0.5, dtype=np.float32)
    for opt in (SGD(0.1, momentum=0.9), RMSprop(), Adam()):
        opt.step([Param("w", w, g, True)])
        assert w.dtype == np.float32


def test_schedules():
    step = StepDecay(1.0, step_size=10, gamma=0.5)
    assert [step(i) for i in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    cos = CosineDecay(1.0, decay_steps=100, alpha=0.1, warmup_steps=10)
    assert cos(0) == pytest.approx(0.1) and cos(9) == pytest.approx(1.0)
    assert cos(55) == pytest.approx(0.1 + 0.9 * 0.5)
    assert cos(100) == pytest.approx(0.1) and cos(1000) == pytest.approx(0.1)
    values = [cos(i) for i in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_optimizer_follows_its_schedule():
    w, g = np.zeros(1), np.ones(1)
    opt = SGD(StepDecay(1.0, step_size=1, gamma=0.5))
    for _ in range(3):
        opt.step([Param("w", w, g, False)])
    assert w[0] == pytest.approx(-(1 + 0.5 + 0.25))
    assert opt.lr == pytest.approx(0.125)


@pytest.mark.parametrize("bad", [lambda: SGD(0.1, momentum=1.5), lambda: RMSprop(rho=1.0),
                                 lambda: Adam(weight_decay=-1), lambda: SGD(-0.1),
                                 lambda: SGD(0.1, nesterov=True),
                                 lambda: make_optimizer("lbfgs", 1)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ConfigError):
        bad()


@pytest.mark.parametrize("make", [lambda: SGD(0.05, momentum=0.9, nesterov=True),
                                  lambda: RMSprop(0.01, weight_decay=0.01),
                                  lambda: Adam(0.05, weight_decay=0.001)],
                         ids=["nesterov", "rmsprop", "adam"])
@pytest.mark.parametrize("parts", [2, 3, 7])
def test_an_update_in_slices_has_the_same_bits(make, parts):
    """step(parts=k) updates k flat slices by separate calls (run on threads by
    training/parallel.py): element-wise, so every bit equals the one-call update."""
    rng = np.random.default_rng(parts)
    shapes = [(5, 4), (3,), (2, 3, 2), (1,)]  # slices of the 1-element one are mostly empty
    whole = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    sliced = [w.copy() for w in whole]
    one, many = make(), make()
    calls = []

    def run(jobs):
        calls.append(len(jobs))
        for job in reversed(jobs):  # any order
            job()

    for _ in range(3):
        grads = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
        one.step([Param(str(i), w, g.copy(), i == 0) for i, (w, g) in
                  enumerate(zip(whole, grads, strict=True))])
        many.step([Param(str(i), w, g.copy(), i == 0) for i, (w, g) in
                   enumerate(zip(sliced, grads, strict=True))], parts=parts, run=run)
    assert calls == [parts] * 3
    for a, b in zip(whole, sliced, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(whole[0], np.zeros_like(whole[0]))
