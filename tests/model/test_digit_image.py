"""model.digit_image: MNIST's own preprocessing, and its invariances.

"Nearly the same" is measured by the Pearson correlation of two 28x28 images (1 = equal up
to brightness); thresholds are stated per test. Pictures are made from real MNIST digits
(data/mnist-train-10k) drawn larger, moved, inverted, thickened, coloured or transparent.
"""

from pathlib import Path

import numpy as np
import pytest

from model.digit_image import (
    CENTRE,
    normalize_digit,
    normalize_digit_detailed,
    resample_matrix,
)
from model.errors import InputError
from model.idx import read_idx
from model.predictor import Predictor

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "data" / "mnist-train-10k"
MODEL = ROOT / "artifacts" / "mnist" / "1"


@pytest.fixture(scope="module")
def mnist() -> tuple[np.ndarray, np.ndarray]:
    """The first 300 bundled training digits (uint8 28x28) and their labels."""
    images = read_idx(DIGITS / "train-images-idx3-ubyte.gz")[:300]
    labels = read_idx(DIGITS / "train-labels-idx1-ubyte.gz")[:300]
    return images, labels


def corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two images' pixels."""
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def paper(digit: np.ndarray, factor: int, canvas: tuple[int, int] = (400, 500),
          at: tuple[int, int] = (30, 60), ink: float = 20, background: float = 235) -> np.ndarray:
    """The MNIST digit drawn ``factor`` times larger in dark ink on light paper (uint8)."""
    big = np.kron(digit.astype(np.float64) / 255, np.ones((factor, factor)))
    out = np.full(canvas, background, dtype=np.float64)
    y, x = at
    out[y:y + big.shape[0], x:x + big.shape[1]] = background + (ink - background) * big
    return out.round().astype(np.uint8)


def test_output_is_an_mnist_style_image(mnist):
    result = normalize_digit_detailed(paper(mnist[0][0], 6))
    img = result.image
    assert img.shape == (28, 28) and img.dtype == np.float32
    assert img.min() == 0 and img.max() == pytest.approx(255)
    assert result.dark_ink and result.background == pytest.approx(235 / 255)
    rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
    assert result.size[0] == 20 or result.size[1] == 20  # fits the 20x20 box
    # ... and covers 20 or 21 pixels after the sub-pixel shift
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in (20, 21)
    mass = img.sum()
    cy = (img.sum(axis=1) * np.arange(28)).sum() / mass
    cx = (img.sum(axis=0) * np.arange(28)).sum() / mass
    assert abs(cy - CENTRE[0]) <= 0.5 and abs(cx - CENTRE[1]) <= 0.5


def test_mnist_digits_come_back_close_to_themselves(mnist):
    """An MNIST digit is already normalised: doing it again changes little (median
    correlation >= 0.95) and the committed model's answers agree on >= 99% of them."""
    images, labels = mnist
    again = np.stack([normalize_digit(x) for x in images])
    assert np.median([corr(a, b) for a, b in zip(again, images, strict=True)]) >= 0.95
    model = Predictor.from_artifact(MODEL)
    assert (model.predict(again).argmax(1) == labels).mean() >= 0.99


def test_moved_digit_gives_the_same_image(mnist):
    digit = mnist[0][1]
    a = normalize_digit(paper(digit, 5, at=(10, 10)))
    b = normalize_digit(paper(digit, 5, at=(200, 300)))
    np.testing.assert_allclose(a, b, atol=1e-3)


def test_scaled_digit_gives_nearly_the_same_image(mnist):
    """Drawn 3x or 11x larger: correlation >= 0.95 with each other, and a median >= 0.95
    with the original 28x28 digits (a few MNIST digits have specks or gaps that the crop
    treats differently from MNIST's, hence the median)."""
    originals = []
    for digit in mnist[0][:20]:
        small, large = normalize_digit(paper(digit, 3)), normalize_digit(paper(digit, 11))
        assert corr(small, large) >= 0.95
        originals.append(corr(large, digit))
    assert np.median(originals) >= 0.95


def test_inverted_digit_gives_the_same_image(mnist):
    dark_on_light = paper(mnist[0][2], 6, ink=10, background=240)
    light_on_dark = 255 - dark_on_light
    a, b = normalize_digit_detailed(dark_on_light), normalize_digit_detailed(light_on_dark)
    assert a.dark_ink and not b.dark_ink
    np.testing.assert_allclose(a.image, b.image, atol=1e-2)


def test_thickened_digit_gives_nearly_the_same_image(mnist):
    """A pen three times as thick (a 7x7 max filter on a 6x drawing): correlation >= 0.8,
    and the committed model still names 9 in 10 of them the same."""
    model = Predictor.from_artifact(MODEL)
    images, labels = mnist
    thin, thick = [], []
    for digit in images[:50]:
        drawn = paper(digit, 6, ink=0, background=255)
        padded = np.pad(drawn, 3, mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, (7, 7))
        thicker = windows.min(axis=(2, 3))  # dark ink spreads
        thin.append(normalize_digit(drawn))
        thick.append(normalize_digit(thicker))
    assert np.median([corr(a, b) for a, b in zip(thin, thick, strict=True)]) >= 0.8
    assert (model.predict(np.stack(thick)).argmax(1) == labels[:50]).mean() >= 0.9


def test_coloured_ink_and_paper_give_the_same_image(mnist):
    """Dark blue ink on yellow paper, via BT.601 luma, as grey ink on grey paper."""
    digit = mnist[0][3]
    grey = paper(digit, 5).astype(np.float64) / 255
    weight = (grey - 235 / 255) / ((20 - 235) / 255)  # 0 paper .. 1 ink
    ink, sheet = np.array([20, 30, 120]), np.array([250, 230, 120])
    rgb = (sheet + (ink - sheet) * weight[..., None]).round().astype(np.uint8)
    assert corr(normalize_digit(rgb), normalize_digit(paper(digit, 5))) >= 0.99


def test_transparent_background_is_white_paper(mnist):
    digit = mnist[0][4]
    opaque = paper(digit, 5, ink=0, background=255)
    rgba = np.zeros((*opaque.shape, 4), dtype=np.uint8)  # black ink, alpha = the stroke
    rgba[..., 3] = 255 - opaque
    np.testing.assert_allclose(normalize_digit(rgba), normalize_digit(opaque), atol=0.5)


def test_light_ink_on_transparent_background_is_found(mnist):
    """White strokes on a transparent background vanish on white paper: black is used."""
    digit = mnist[0][5]
    rgba = np.full((*paper(digit, 5).shape, 4), 255, dtype=np.uint8)
    rgba[..., 3] = 255 - paper(digit, 5, ink=0, background=255)
    assert corr(normalize_digit(rgba), normalize_digit(paper(digit, 5))) >= 0.99


def test_noise_and_specks_do_not_move_the_digit(mnist):
    """Sensor noise (sigma 8) and two dust specks far from the digit: correlation >= 0.9."""
    rng = np.random.default_rng(0)
    clean = paper(mnist[0][6], 6)
    noisy = clean + rng.normal(0, 8, clean.shape)
    noisy[390:392, 490:492] = 30
    noisy[2:4, 2:4] = 30
    noisy = np.clip(noisy, 0, 255).astype(np.uint8)
    assert corr(normalize_digit(noisy), normalize_digit(clean)) >= 0.9


@pytest.mark.parametrize("picture", [
    np.full((50, 60), 255, dtype=np.uint8),  # blank white
    np.zeros((50, 60, 3), dtype=np.uint8),  # blank black
    np.full((50, 60), 128, dtype=np.uint8) + np.eye(50, 60, dtype=np.uint8) * 5,  # faint
    np.zeros((50, 60, 4), dtype=np.uint8),  # fully transparent
], ids=["white", "black", "faint", "transparent"])
def test_blank_pictures_have_no_ink(picture):
    with pytest.raises(InputError, match="no ink found"):
        normalize_digit(picture)


@pytest.mark.parametrize("picture, message", [
    (np.zeros((0, 10)), "empty"),
    (np.zeros((5, 5, 7)), "channels"),
    (np.zeros((2, 5, 5, 3)), "channels"),
    (np.array([["a", "b"]]), "numbers"),
    (np.full((5, 5), np.nan), "NaN"),
    (np.full((5, 5), 2.0), r"in \[0, 1\]"),
    (np.full((5, 5), -1, dtype=np.int16), r"in \[0, 32767\]"),
])
def test_unusable_arrays_are_input_errors(picture, message):
    with pytest.raises(InputError, match=message):
        normalize_digit(picture)


def test_value_scales_by_dtype(mnist):
    """uint8 0..255, uint16 0..65535, float 0..1 and bool give the same digit."""
    drawn = paper(mnist[0][7], 4, ink=0, background=255)
    ref = normalize_digit(drawn)
    np.testing.assert_allclose(normalize_digit(drawn.astype(np.uint16) * 257), ref, atol=0.1)
    np.testing.assert_allclose(normalize_digit(drawn / 255.0), ref, atol=0.1)
    assert corr(normalize_digit(drawn > 128), ref) >= 0.95


def test_resample_matrix_averages_areas_and_interpolates():
    halve = resample_matrix(4, 2)
    np.testing.assert_allclose(halve, [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    third = resample_matrix(3, 2)  # output pixels cover 1.5 input pixels each
    np.testing.assert_allclose(third, [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]], rtol=1e-6)
    double = resample_matrix(2, 4)
    np.testing.assert_allclose(double @ np.array([0.0, 1.0]), [0, 0.25, 0.75, 1])
    np.testing.assert_allclose(resample_matrix(7, 5).sum(axis=1), 1, rtol=1e-6)


def test_large_photo_is_reduced_first():
    """A 4-megapixel photo of a bar (reduced 3x before the steps): a 1 in the middle.
    (Its speed is measured in docs/BENCHMARKS.md, not here: the test machines are shared.)"""
    photo = np.full((1800, 2400, 3), 200, dtype=np.uint8)
    photo[600:1200, 1170:1230] = 30
    result = normalize_digit_detailed(photo)
    img = result.image
    cols = np.flatnonzero(img.any(axis=0))
    assert img.any(axis=1).sum() in (20, 21) and 1 <= len(cols) <= 4
    top, left, bottom, right = result.box  # in the photo's own pixels
    assert abs(top - 600) <= 3 and abs(bottom - 1200) <= 3
    assert abs(left - 1170) <= 3 and abs(right - 1230) <= 3
