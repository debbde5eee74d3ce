"""The training loop's early stopping and the digit distortions."""

import numpy as np
import pytest

from model import SGD, Dense, MeanSquaredError, Sequential
from training.augment import Distortion, distort
from training.loop import FitConfig, fit


def run_with_scores(scores, patience, min_epochs=0, restore=True):
    """Train a tiny net while the 'validation metric' follows a fixed script."""
    net = Sequential([Dense(1)], input_shape=(2,)).build(seed=0)
    x = np.random.default_rng(0).random((16, 2), dtype=np.float32)
    y = x.sum(axis=1, keepdims=True)
    snapshots = []
    script = iter(scores)

    def metric(out):
        snapshots.append(net.get_weights()["0.W"].copy())
        return next(script)

    history = fit(net, SGD(0.1), MeanSquaredError(), x, y, x, y,
                  FitConfig(epochs=len(scores), batch_size=4, patience=patience,
                            min_epochs=min_epochs, restore_best=restore, progress=False),
                  metric, "score", higher_is_better=True)
    return net, history, snapshots


def test_early_stopping_keeps_the_best_epoch():
    net, history, snapshots = run_with_scores([0.5, 0.7, 0.6, 0.65, 0.9, 0.95], patience=2)
    assert history.stopped_early and len(history.epochs) == 4 and history.best_epoch == 2
    np.testing.assert_array_equal(net.get_weights()["0.W"], snapshots[1])


def test_min_epochs_and_keeping_the_last_epoch():
    # the 0.9 of epoch 1 is ignored: it comes before min_epochs
    _, history, _ = run_with_scores([0.9, 0.1, 0.2, 0.3], patience=1, min_epochs=2)
    assert history.best_epoch == 4 and not history.stopped_early
    net, history, snapshots = run_with_scores([0.9, 0.1, 0.2], patience=None, restore=False)
    np.testing.assert_array_equal(net.get_weights()["0.W"], snapshots[-1])
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3]


def digit():
    img = np.zeros((1, 28, 28), dtype=np.uint8)
    img[0, 8:20, 12:16] = 255
    return img


def test_no_distortion_is_the_identity():
    img = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    out = distort(img, np.random.default_rng(1), Distortion(0, 0, 0, 0))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, img)


def test_shifts_move_the_digit_by_at_most_the_limit():
    imgs = np.repeat(digit(), 200, axis=0)
    out = distort(imgs, np.random.default_rng(2), Distortion(max_shift=2, max_rotation=0,
                                                                max_scale=0))
    ys, xs = np.mgrid[:28, :28]
    cy = (out * ys).sum(axis=(1, 2)) / out.sum(axis=(1, 2))
    cx = (out * xs).sum(axis=(1, 2)) / out.sum(axis=(1, 2))
    assert np.abs(cy - 13.5).max() <= 2.01 and np.abs(cx - 13.5).max() <= 2.01
    assert np.abs(cy - 13.5).max() > 1.0  # and they do move
    np.testing.assert_allclose(out.sum(axis=(1, 2)), imgs[0].sum(), rtol=1e-4)  # mass kept


def test_rotation_and_elastic_keep_values_in_range_and_are_seeded():
    imgs = np.repeat(digit(), 8, axis=0)
    d = Distortion(max_shift=2, max_rotation=12, max_scale=0.1, elastic_alpha=2.5)
    a = distort(imgs, np.random.default_rng(3), d)
    b = distort(imgs, np.random.default_rng(3), d)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 255
    assert not np.array_equal(a[0], a[1])
    assert a.sum() == pytest.approx(imgs.astype(np.float64).sum(), rel=0.15)
