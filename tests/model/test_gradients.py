"""Finite-difference checks of every layer's and loss's gradients (float64)."""

import numpy as np
import pytest
from gradcheck import check_layer, numeric_grad, sample_indices

import model.conv
from model import (
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    MeanSquaredError,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    Softmax,
    SoftmaxCrossEntropy,
    Tanh,
)

F64 = np.float64


def built(layer, input_shape, seed=0):
    layer.build(input_shape, np.random.default_rng(seed), F64)
    return layer


@pytest.mark.parametrize("units,in_features,batch", [(1, 1, 1), (5, 3, 4), (7, 13, 9)])
def test_dense(units, in_features, batch):
    rng = np.random.default_rng(units)
    layer = built(Dense(units, bias_initializer="glorot_uniform"), (in_features,))
    check_layer(layer, rng.standard_normal((batch, in_features)), rng)


def test_dense_without_bias():
    rng = np.random.default_rng(1)
    layer = built(Dense(4, use_bias=False), (3,))
    assert set(layer.params) == {"W"}
    check_layer(layer, rng.standard_normal((2, 3)), rng)


CONV_CASES = [
    # (input h, w, c), filters, kernel, strides, padding, batch
    ((5, 5, 1), 2, 3, 1, "valid", 2),
    ((7, 6, 3), 4, [3, 2], [2, 1], "same", 2),
    ((6, 7, 2), 3, 3, 2, "valid", 3),
    ((5, 4, 2), 2, [2, 3], [1, 2], "same", 1),
    ((4, 4, 3), 5, 1, 1, "valid", 2),
    ((9, 9, 2), 2, 5, 3, "same", 2),
    ((3, 3, 1), 1, 3, 1, "valid", 4),  # output 1x1
]


@pytest.mark.parametrize("shape,filters,kernel,strides,padding,batch", CONV_CASES)
def test_conv2d(shape, filters, kernel, strides, padding, batch):
    rng = np.random.default_rng(filters)
    layer = built(Conv2D(filters, kernel, strides=strides, padding=padding,
                         bias_initializer="he_uniform"), shape)
    check_layer(layer, rng.standard_normal((batch, *shape)), rng)


@pytest.mark.parametrize("shape,filters,kernel,strides,padding", [c[:5] for c in CONV_CASES])
def test_conv2d_a_few_images_at_a_time(monkeypatch, shape, filters, kernel, strides, padding):
    """Training passes over chunks of two images, the last one short, give the same
    gradients as finite differences (forward, weight gradients summed over chunks, col2im)."""
    rng = np.random.default_rng(filters)
    layer = built(Conv2D(filters, kernel, strides=strides, padding=padding,
                         bias_initializer="he_uniform"), shape)
    monkeypatch.setattr(model.conv, "TRAIN_COLS_ELEMENTS",
                        2 * layer.oh * layer.ow * (layer._k + 1))
    assert layer._chunk_images(5, layer._k + 1) == 2
    check_layer(layer, rng.standard_normal((5, *shape)), rng)


POOL_CASES = [
    ((4, 4, 2), 2, None, "valid"),
    ((5, 5, 1), 2, None, "valid"),  # odd size: last row and column unused
    ((5, 6, 3), 3, 2, "valid"),  # overlapping windows
    ((5, 5, 2), 2, None, "same"),
    ((7, 5, 2), [3, 2], [2, 1], "same"),
    ((6, 6, 1), 2, 3, "valid"),  # gaps between windows
]


@pytest.mark.parametrize("shape,pool,strides,padding", POOL_CASES)
def test_maxpool2d(shape, pool, strides, padding):
    rng = np.random.default_rng(3)
    layer = built(MaxPool2D(pool, strides=strides, padding=padding), shape)
    # distinct values, so the maximum of each window is unique and the max is differentiable
    x = rng.permutation(np.prod((2, *shape))).reshape((2, *shape)).astype(F64) * 0.1
    check_layer(layer, x, rng)


@pytest.mark.parametrize("layer_cls", [ReLU, Sigmoid, Tanh, Softmax])
@pytest.mark.parametrize("shape", [(1, 3), (4, 7), (2, 3, 3, 2)])
def test_activations(layer_cls, shape):
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape) * 3
    if layer_cls is ReLU:
        x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink
    check_layer(built(layer_cls(), shape[1:]), x, rng)


def test_flatten_and_reshape():
    rng = np.random.default_rng(4)
    check_layer(built(Flatten(), (3, 2, 2)), rng.standard_normal((2, 3, 2, 2)), rng)
    check_layer(built(Reshape([4, 3, 1]), (12,)), rng.standard_normal((3, 12)), rng)


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.75])
def test_dropout_with_a_fixed_mask(rate):
    rng = np.random.default_rng(5)
    layer = built(Dropout(rate), (6,))

    def reseed():
        layer.rng = np.random.default_rng(42)

    check_layer(layer, rng.standard_normal((5, 6)), rng, reseed)


def check_loss(loss, pred, target, rng):
    value, grad = loss(pred.copy(), target)
    assert np.isfinite(value)
    for idx in sample_indices(pred, rng, 60):
        num = numeric_grad(lambda: loss(pred.copy(), target)[0], pred, idx)
        np.testing.assert_allclose(grad[idx], num, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("shape", [(1, 1), (6, 1), (4, 3)])
def test_mean_squared_error(shape):
    rng = np.random.default_rng(6)
    check_loss(MeanSquaredError(), rng.standard_normal(shape), rng.standard_normal(shape), rng)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_softmax_cross_entropy_with_labels(smoothing):
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((8, 5)) * 4
    check_loss(SoftmaxCrossEntropy(smoothing), logits, rng.integers(0, 5, 8), rng)


def test_softmax_cross_entropy_with_probabilities():
    rng = np.random.default_rng(8)
    target = rng.random((6, 4))
    target /= target.sum(axis=1, keepdims=True)
    check_loss(SoftmaxCrossEntropy(), rng.standard_normal((6, 4)), target, rng)


def test_cross_entropy_matches_its_definition():
    rng = np.random.default_rng(9)
    logits = rng.standard_normal((5, 3))
    labels = np.array([0, 2, 1, 1, 0])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(p[np.arange(5), labels]))
    assert SoftmaxCrossEntropy()(logits, labels)[0] == pytest.approx(expected, rel=1e-12)


def test_whole_network_gradient_through_the_relu_maxpool_reordering():
    """Sequential runs ReLU->MaxPool2D as MaxPool2D->ReLU; gradients must still be exact."""
    rng = np.random.default_rng(10)
    net = Sequential([Reshape([6, 6, 1]), Conv2D(3, 3, padding="same"), ReLU(), MaxPool2D(2),
                      Conv2D(2, 2), Tanh(), Flatten(), Dense(3)], input_shape=(6, 6))
    net.build(seed=1, dtype=F64)
    x = rng.standard_normal((3, 6, 6))
    labels = rng.integers(0, 3, 3)
    loss = SoftmaxCrossEntropy()

    def value() -> float:
        return loss(net.forward(x), labels)[0]

    _, grad = loss(net.forward(x), labels)
    net.backward(grad)
    for p in net.parameters():
        analytic = p.grad.copy()
        for idx in sample_indices(p.value, rng, 10):
            np.testing.assert_allclose(analytic[idx], numeric_grad(value, p.value, idx),
                                       rtol=1e-5, atol=1e-8, err_msg=p.name)


def test_average_ensemble_layer():
    from model import Average

    rng = np.random.default_rng(11)
    layer = Average([
        [{"type": "Dense", "units": 4}, {"type": "Tanh"}, {"type": "Dense", "units": 2}],
        [{"type": "Dense", "units": 3}, {"type": "Dense", "units": 2}]])
    layer.build((5,), rng, F64)
    check_layer(layer, rng.standard_normal((3, 5)), rng)
