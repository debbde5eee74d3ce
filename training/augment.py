"""Random geometric distortions of digit images, vectorised over the batch.

Each image gets its own random affine map (rotation, scale, shift) and, optionally, a smooth
elastic displacement field (Simard et al., 2003); the distorted image is read back with
bilinear interpolation. Everything is whole-batch NumPy: the displacement fields are
smoothed with two batched matrix products (Gaussian blur is separable), and sampling is one
gather of the four neighbours of every output pixel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

F32 = np.float32


@dataclass(frozen=True)
class Distortion:
    """How much to distort: the ranges are uniform, per image."""

    max_shift: float = 2.0  # pixels, in x and y
    max_rotation: float = 12.0  # degrees
    max_scale: float = 0.1  # relative, 1 +- max_scale
    elastic_alpha: float = 0.0  # displacement strength in pixels (0 = off)
    elastic_sigma: float = 4.0  # smoothness of the displacement field, pixels

    def to_dict(self) -> dict:
        return asdict(self)


def _gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """(size, size) matrix that blurs a vector with a normalised Gaussian (zero padding)."""
    idx = np.arange(size)
    g = np.exp(-0.5 * ((idx[:, None] - idx[None, :]) / sigma) ** 2)
    return (g / g.sum(axis=1, keepdims=True)).astype(F32)


def distort(images: np.ndarray, rng: np.random.Generator, d: Distortion) -> np.ndarray:
    """Distorted copies of images (n, h, w), any numeric dtype -> float32, same value scale.

    Pixels mapped from outside the image read as 0 (background).
    """
    n, h, w = images.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    angle = np.deg2rad(rng.uniform(-d.max_rotation, d.max_rotation, n))
    scale = rng.uniform(1 - d.max_scale, 1 + d.max_scale, n)
    shift = rng.uniform(-d.max_shift, d.max_shift, (n, 2))
    # inverse map: for each output pixel, where to read in the source image
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    yy, xx = np.meshgrid(np.arange(h, dtype=F32) - cy, np.arange(w, dtype=F32) - cx,
                         indexing="ij")
    ys = (cos[:, None, None] * yy - sin[:, None, None] * xx + cy - shift[:, 0, None, None])
    xs = (sin[:, None, None] * yy + cos[:, None, None] * xx + cx - shift[:, 1, None, None])
    ys, xs = ys.astype(F32), xs.astype(F32)
    if d.elastic_alpha > 0:
        gh, gw = _gaussian_matrix(h, d.elastic_sigma), _gaussian_matrix(w, d.elastic_sigma)
        for coords in (ys, xs):
            field = rng.uniform(-1, 1, (n, h, w)).astype(F32)
            field = gh @ field @ gw.T
            field *= F32(d.elastic_alpha) / (np.abs(field).max(axis=(1, 2), keepdims=True)
                                              + F32(1e-6))
            coords += field
    return bilinear_sample(images, ys, xs)


def bilinear_sample(images: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """images (n, h, w) read at fractional coordinates ys, xs (n, h, w); outside reads 0."""
    n, h, w = images.shape
    padded = np.zeros((n, h + 2, w + 2), dtype=F32)  # one pixel of zero border
    padded[:, 1:-1, 1:-1] = images
    flat = padded.reshape(n, -1)
    # clamp into the padded frame so outside coordinates read the zero border
    ys = np.clip(ys + 1, 0, h + 1 - 1e-3)
    xs = np.clip(xs + 1, 0, w + 1 - 1e-3)
    y0 = np.floor(ys)
    x0 = np.floor(xs)
    fy, fx = (ys - y0).reshape(n, -1), (xs - x0).reshape(n, -1)
    y0 = y0.astype(np.intp).reshape(n, -1)
    x0 = x0.astype(np.intp).reshape(n, -1)
    y1 = np.minimum(y0 + 1, h + 1)
    x1 = np.minimum(x0 + 1, w + 1)
    stride = w + 2

    def at(yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
        return np.take_along_axis(flat, yi * stride + xi, axis=1)

    top = at(y0, x0) * (1 - fx) + at(y0, x1) * fx
    bottom = at(y1, x0) * (1 - fx) + at(y1, x1) * fx
    return (top * (1 - fy) + bottom * fy).reshape(n, h, w).astype(F32, copy=False)
