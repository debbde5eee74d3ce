"""Conv2D and MaxPool2D forward passes against plain loops over every output pixel."""

import numpy as np
import pytest

from model import Conv2D, MaxPool2D
from model.conv import _out_and_pad


def naive_conv(x, w, b, strides, padding):
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    sh, sw = strides
    oh, top, bottom = _out_and_pad(h, kh, sh, padding)
    ow, left, right = _out_and_pad(wd, kw, sw, padding)
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    out = np.zeros((n, oh, ow, f))
    for i in range(n):
        for r in range(oh):
            for s in range(ow):
                patch = xp[i, r * sh:r * sh + kh, s * sw:s * sw + kw, :]
                for k in range(f):
                    out[i, r, s, k] = np.sum(patch * w[:, :, :, k]) + b[k]
    return out


def naive_pool(x, pool, strides, padding):
    n, h, wd, c = x.shape
    (ph, pw), (sh, sw) = pool, strides
    oh, top, bottom = _out_and_pad(h, ph, sh, padding)
    ow, left, right = _out_and_pad(wd, pw, sw, padding)
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=-np.inf)
    out = np.zeros((n, oh, ow, c))
    for i in range(n):
        for r in range(oh):
            for s in range(ow):
                out[i, r, s] = xp[i, r * sh:r * sh + ph, s * sw:s * sw + pw].max(axis=(0, 1))
    return out


CONV = [((6, 6, 1), 3, 3, 1, "valid"), ((7, 5, 3), 4, [3, 2], [2, 1], "same"),
        ((8, 9, 2), 5, 3, 2, "valid"), ((5, 5, 4), 2, [1, 3], [3, 1], "same"),
        ((28, 28, 1), 8, 5, 1, "same")]


@pytest.mark.parametrize("shape,filters,kernel,strides,padding", CONV)
def test_conv2d_matches_loops(shape, filters, kernel, strides, padding):
    rng = np.random.default_rng(0)
    layer = Conv2D(filters, kernel, strides=strides, padding=padding,
                   bias_initializer="glorot_uniform")
    layer.build(shape, rng, np.float64)
    x = rng.standard_normal((3, *shape))
    expected = naive_conv(x, layer.params["W"], layer.params["b"], layer.strides, padding)
    assert layer.output_shape == expected.shape[1:]
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.infer(x.copy()), expected, rtol=1e-12, atol=1e-12)


POOL = [((4, 4, 2), 2, None, "valid"), ((5, 7, 3), 2, None, "valid"),
        ((6, 6, 1), 3, 2, "valid"), ((5, 5, 2), 2, None, "same"),
        ((7, 4, 2), [3, 2], [2, 3], "same"),
        ((24, 24, 4), 2, None, "valid")]


@pytest.mark.parametrize("shape,pool,strides,padding", POOL)
def test_maxpool2d_matches_loops(shape, pool, strides, padding):
    rng = np.random.default_rng(1)
    layer = MaxPool2D(pool, strides=strides, padding=padding)
    layer.build(shape, rng, np.float64)
    x = rng.standard_normal((3, *shape))
    expected = naive_pool(x, layer.window, layer.strides, padding)
    assert layer.output_shape == expected.shape[1:]
    np.testing.assert_array_equal(layer.forward(x), expected)
    np.testing.assert_array_equal(layer.infer(x.copy()), expected)


def test_maxpool_gradient_goes_to_a_single_maximum_on_ties():
    layer = MaxPool2D(2)
    layer.build((2, 2, 1), np.random.default_rng(0), np.float64)
    layer.needs_input_grad = True
    layer.forward(np.ones((1, 2, 2, 1)))
    dx = layer.backward(np.array([[[[5.0]]]]))
    assert dx.sum() == 5.0 and np.count_nonzero(dx) == 1
