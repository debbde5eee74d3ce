"""End to end: small networks actually learn (XOR, two moons, bar orientation)."""

import numpy as np

from model import (
    SGD,
    Adam,
    Conv2D,
    Dense,
    Flatten,
    MaxPool2D,
    ReLU,
    Reshape,
    Sequential,
    SoftmaxCrossEntropy,
    Tanh,
)


def train(net, x, y, optimizer, epochs, batch, seed=0):
    rng = np.random.default_rng(seed)
    loss = SoftmaxCrossEntropy()
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            net.train_step(x[idx], y[idx], loss, optimizer)


def accuracy(net, x, y):
    return float((net.infer(x).argmax(axis=1) == y).mean())


def two_moons(n, noise, rng):
    t = rng.uniform(0, np.pi, n)
    label = rng.integers(0, 2, n)
    x = np.where(label[:, None] == 0, np.c_[np.cos(t), np.sin(t)],
                 np.c_[1 - np.cos(t), 0.5 - np.sin(t)])
    return (x + rng.normal(0, noise, (n, 2))).astype(np.float32), label


def test_xor():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([0, 1, 1, 0])
    net = Sequential([Dense(8), Tanh(), Dense(2)], input_shape=(2,)).build(seed=0)
    train(net, x, y, SGD(0.5, momentum=0.9), epochs=300, batch=4)
    assert accuracy(net, x, y) == 1.0


def test_noisy_two_moons():
    rng = np.random.default_rng(0)
    x, y = two_moons(1000, 0.15, rng)
    net = Sequential([Dense(32), ReLU(), Dense(32), ReLU(), Dense(2)], input_shape=(2,)).build()
    train(net, x[:800], y[:800], Adam(0.01), epochs=60, batch=32)
    assert accuracy(net, x[800:], y[800:]) > 0.95


def test_cnn_learns_bar_orientation():
    rng = np.random.default_rng(1)
    n = 600
    y = rng.integers(0, 2, n)
    img = rng.normal(0, 0.3, (n, 10, 10)).astype(np.float32)
    pos = rng.integers(1, 9, n)
    for i in range(n):
        if y[i]:
            img[i, pos[i], 1:9] += 1.5
        else:
            img[i, 1:9, pos[i]] += 1.5
    net = Sequential([Reshape([10, 10, 1]), Conv2D(6, 3), ReLU(), MaxPool2D(2), Flatten(),
                      Dense(2)], input_shape=(10, 10)).build(seed=2)
    train(net, img[:500], y[:500], Adam(0.01), epochs=15, batch=32)
    assert accuracy(net, img[500:], y[500:]) > 0.95
