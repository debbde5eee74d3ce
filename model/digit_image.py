"""A picture of one digit -> the 28x28 MNIST-style image the digit model expects.

MNIST (LeCun et al., http://yann.lecun.com/exdb/mnist/) was made from black-and-white NIST
scans: each digit was "size normalized to fit in a 20x20 pixel box while preserving [its]
aspect ratio", the normalisation's anti-aliasing leaving grey levels, and then "centered in
a 28x28 image by computing the center of mass of the pixels, and translating the image so
as to position this point at the center". The result is a white digit on black, 0..255.
A model trained on it is only accurate on pictures made the same way, so every path that
feeds the model a picture (V1, V2, raw bodies, the batch scorer, training, export) uses
this one NumPy implementation of that procedure:

1. **alpha** composited on white paper (a transparent PNG from a drawing app is ink on white);
2. **grayscale** as ITU-R BT.601 luma, ``0.299 R + 0.587 G + 0.114 B`` on the stored
   (gamma-encoded) values, as Pillow's ``convert("L")`` and JPEG do;
3. **polarity**: the background level is the median of the picture's border; the ink is
   whichever side of it reaches further (dark ink on light paper, or light on dark);
4. **background removed**: ink = distance from the background level, below a noise floor
   (``floor`` x the ink's peak, and at least 3 x the border's noise) set to 0, the rest
   stretched so the ink's peak is 1;
5. **cropped** to the ink's bounding box (ignoring ``trim`` of the ink mass on each side,
   so isolated specks of dust do not widen it);
6. **scaled to fit a 20x20 box** keeping the aspect ratio: area averaging when shrinking
   (every source pixel counts by its overlap, which is the anti-aliasing), linear
   interpolation when enlarging;
7. **placed on 28x28** with its centre of mass on pixel (14, 14), where MNIST puts it (its
   training digits' centres of mass: 14.00 +- 0.29 in both axes: MNIST shifted by whole
   pixels). Here the shift is sub-pixel (bilinear), so that a digit moved or scaled by a
   fraction of a pixel gives nearly the same image rather than one a pixel off; the model
   is trained on randomly sub-pixel-shifted digits anyway.

Pictures larger than ``MAX_WORKING_SIDE`` on their long side are first reduced by block
averaging, so a 16-megapixel photo costs tens of milliseconds, not seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

F32 = np.float32
#: the MNIST frame and the box the digit is scaled to fit in
FRAME, BOX = 28, 20
#: where MNIST puts the centre of mass (row, column), in pixel indices
CENTRE = (14, 14)
#: pictures with a longer side are block-averaged down to at most this first
MAX_WORKING_SIDE = 1024
#: ITU-R BT.601 luma weights for R, G, B
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class NormalizedDigit:
    """The 28x28 image and what the normaliser decided on the way, for display and debug.

    ``image`` is float32 (28, 28), 0..255, white digit on black. ``dark_ink`` is True when
    the picture had dark ink on light paper; ``background`` the paper level (0..1);
    ``box`` the ink's bounding box in the input picture as (top, left, bottom, right),
    bottom and right exclusive; ``size`` the digit's (height, width) inside the 20x20 box.
    """

    image: np.ndarray
    dark_ink: bool
    background: float
    box: tuple[int, int, int, int]
    size: tuple[int, int]


def normalize_digit(picture: np.ndarray, **options: float) -> np.ndarray:
    """The 28x28 float32 MNIST-style image (0..255, white on black) of one digit's picture.

    ``picture``: (H, W) grey, (H, W, 1), (H, W, 2) grey + alpha, (H, W, 3) RGB or (H, W, 4)
    RGBA; unsigned integers scaled by their dtype's maximum, floats in [0, 1], booleans as
    0/1. Options as ``normalize_digit_detailed``. Raises InputError for an unusable array
    or a picture with no ink.
    """
    return normalize_digit_detailed(picture, **options).image


def normalize_digit_detailed(picture: np.ndarray, *, floor: float = 0.2,
                             min_contrast: float = 0.08, trim: float = 0.003,
                             max_value: float | None = None) -> NormalizedDigit:
    """Normalise one digit's picture like MNIST; see the module docstring for the steps.

    ``floor``: ink weaker than this fraction of the ink's peak is background (noise,
    shadows, JPEG ringing). ``min_contrast``: the ink must differ from the paper by at least
    this fraction of the full range, else the picture is blank. ``trim``: fraction of the
    ink mass ignored on each side when cropping. ``max_value``: the value of white (default:
    the dtype's maximum for integers, 1 for floats).
    """
    rgba = _as_float(picture, max_value)
    gray = _reduce(_grayscale_on(rgba, 1.0), MAX_WORKING_SIDE)
    background, peak, dark = _polarity(gray)
    if rgba.shape[2] in (2, 4):
        # light ink on a transparent background (a dark-mode drawing app) vanishes on
        # white paper: keep whichever of white or black paper shows the ink best
        on_black = _reduce(_grayscale_on(rgba, 0.0), MAX_WORKING_SIDE)
        black_background, black_peak, black_dark = _polarity(on_black)
        if black_peak > peak:
            gray, background, peak, dark = on_black, black_background, black_peak, black_dark
    ink = _ink(gray, background, peak, dark, floor, min_contrast)
    top, left, bottom, right = _ink_box(ink, trim)
    k = gray.shape[0] / rgba.shape[0], gray.shape[1] / rgba.shape[1]
    box = (int(top / k[0]), int(left / k[1]), min(rgba.shape[0], round(bottom / k[0])),
           min(rgba.shape[1], round(right / k[1])))
    digit = fit_box(ink[top:bottom, left:right], BOX)
    image = centre(digit, FRAME)
    peak = image.max()
    if peak <= 0:
        raise InputError("no ink found: the picture is blank or has no clear digit on it")
    image *= F32(255 / peak)  # MNIST digits all reach 255, however thin the pen
    np.clip(image, 0, 255, out=image)  # float rounding must not leave the model's range
    return NormalizedDigit(image=image, dark_ink=dark, background=float(background),
                           box=box, size=digit.shape)


# -- steps -------------------------------------------------------------------------------
def _as_float(picture: np.ndarray, max_value: float | None) -> np.ndarray:
    """picture as float32 (H, W, C) in [0, 1], C in 1..4; InputError if it is no picture."""
    arr = np.asarray(picture)
    if arr.dtype.kind not in "buif":
        raise InputError(f"a picture must be an array of numbers, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise InputError("a picture must be (height, width) or (height, width, channels) "
                         f"with 1-4 channels, got shape {list(arr.shape)}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError("the picture is empty (0 pixels)")
    if max_value is None:
        max_value = 1.0 if arr.dtype.kind in "bf" else float(np.iinfo(arr.dtype).max)
    if not (np.isfinite(max_value) and max_value > 0):
        raise InputError(f"max_value must be a positive number, got {max_value!r}")
    out = np.multiply(arr, F32(1 / max_value), dtype=F32)
    if not np.isfinite(out).all():
        raise InputError("the picture has NaN or infinite values")
    if out.min() < 0 or out.max() > 1 + 1e-6:
        raise InputError(f"picture values must be in [0, {max_value:g}], got "
                         f"{arr.min().item()!r}..{arr.max().item()!r}")
    return out


def _grayscale_on(rgba: np.ndarray, paper: float) -> np.ndarray:
    """(H, W, C) float32 in [0, 1] -> (H, W) BT.601 luma, transparent parts ``paper``."""
    c = rgba.shape[2]
    if c in (1, 2):
        gray = rgba[:, :, 0].copy()
    else:
        gray = rgba[:, :, 0] * F32(LUMA[0])
        gray += rgba[:, :, 1] * F32(LUMA[1])
        gray += rgba[:, :, 2] * F32(LUMA[2])
    if c in (2, 4):  # composite: a * value + (1 - a) * paper
        alpha = rgba[:, :, -1]
        gray -= F32(paper)
        gray *= alpha
        gray += F32(paper)
    return gray


def _reduce(gray: np.ndarray, max_side: int) -> np.ndarray:
    """gray block-averaged by the smallest integer factor that brings both sides to at most
    max_side (edges padded by repetition); unchanged when already small enough."""
    k = -(-max(gray.shape) // max_side)
    if k <= 1:
        return gray
    h, w = gray.shape
    ph, pw = -h % k, -w % k
    if ph or pw:
        gray = np.pad(gray, ((0, ph), (0, pw)), mode="edge")
    return gray.reshape((h + ph) // k, k, (w + pw) // k, k).mean(axis=(1, 3), dtype=F32)


def _border(gray: np.ndarray) -> np.ndarray:
    """The pixels of the picture's frame, 1/50 of the short side wide (at least 1)."""
    b = max(1, min(gray.shape) // 50)
    if min(gray.shape) <= 2 * b:
        return gray.ravel()
    return np.concatenate([gray[:b].ravel(), gray[-b:].ravel(), gray[b:-b, :b].ravel(),
                           gray[b:-b, -b:].ravel()])


def _polarity(gray: np.ndarray) -> tuple[float, float, bool]:
    """(paper level, the ink's peak distance from it, whether the ink is darker).

    The paper level is the border's median; the ink is on whichever side of it the picture
    reaches further. Extremes are read on 2x2 means when both sides reach out, so a single
    speck of noise cannot decide.
    """
    background = float(np.median(_border(gray)))
    dark_reach = background - float(gray.min())
    light_reach = float(gray.max()) - background
    if min(dark_reach, light_reach) > 0.02 and min(gray.shape) >= 2:
        smooth = (gray[:-1, :-1] + gray[1:, :-1] + gray[:-1, 1:] + gray[1:, 1:]) / 4
        dark_reach = background - float(smooth.min())
        light_reach = float(smooth.max()) - background
    return background, max(dark_reach, light_reach), dark_reach >= light_reach


def _ink(gray: np.ndarray, background: float, peak: float, dark: bool, floor: float,
         min_contrast: float) -> np.ndarray:
    """Ink in [0, 1], background 0: distance from the paper level, below the noise floor
    zeroed, the rest stretched so that ``peak`` is 1. InputError if there is no ink."""
    if peak < min_contrast:
        raise InputError("no ink found: the picture is blank (nothing in it differs from "
                         f"the background by {min_contrast:.0%} of the full range)")
    border = _border(gray)
    noise = 1.4826 * float(np.median(np.abs(border - background)))  # robust std
    low = max(floor * peak, 3 * noise)
    if low >= peak:
        raise InputError("no ink found: nothing stands out from the background's noise")
    ink = (F32(background) - gray) if dark else (gray - F32(background))
    ink -= F32(low)
    ink *= F32(1 / (peak - low))
    np.clip(ink, 0, 1, out=ink)
    return ink


def _ink_box(ink: np.ndarray, trim: float) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the ink, ignoring ``trim`` of its mass on each side."""
    rows, cols = ink.sum(axis=1, dtype=np.float64), ink.sum(axis=0, dtype=np.float64)
    total = rows.sum()
    if total <= 0:
        raise InputError("no ink found: the picture is blank or has no clear digit on it")

    def span(mass: np.ndarray) -> tuple[int, int]:
        cum = np.cumsum(mass)
        first = int(np.searchsorted(cum, trim * total, side="right"))
        last = int(np.searchsorted(cum, (1 - trim) * total, side="left"))
        return first, min(len(mass), max(last, first) + 1)

    top, bottom = span(rows)
    left, right = span(cols)
    return top, left, bottom, right


def resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32 weights resizing a length-n_in signal to n_out samples.

    Shrinking averages areas: output pixel i covers input [i, i + 1) * n_in / n_out and
    every input pixel weighs by its overlap with it. Enlarging interpolates linearly
    between pixel centres (edges clamped). Rows sum to 1.
    """
    if n_out <= n_in:
        ratio = n_in / n_out
        starts = np.arange(n_out)[:, None] * ratio
        x = np.arange(n_in)[None, :]
        overlap = np.minimum(x + 1, starts + ratio) - np.maximum(x, starts)
        w = np.clip(overlap, 0, None)
    else:
        centres = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        centres = np.clip(centres, 0, n_in - 1)
        w = np.clip(1 - np.abs(centres[:, None] - np.arange(n_in)[None, :]), 0, None)
    return (w / w.sum(axis=1, keepdims=True)).astype(F32)


def fit_box(image: np.ndarray, box: int) -> np.ndarray:
    """(h, w) image resized so its longer side is ``box``, aspect ratio kept (rounded to
    whole pixels): float32 (nh, nw) with max(nh, nw) == box."""
    h, w = image.shape
    scale = box / max(h, w)
    nh, nw = max(1, min(box, round(h * scale))), max(1, min(box, round(w * scale)))
    return resample_matrix(h, nh) @ image.astype(F32, copy=False) @ resample_matrix(w, nw).T


def centre(digit: np.ndarray, frame: int) -> np.ndarray:
    """digit (h, w), h and w <= frame, placed on a (frame, frame) float32 zero canvas so
    that its centre of mass lands on CENTRE: a whole-pixel shift, then the remaining
    fraction by bilinear interpolation; the digit is kept wholly inside the frame."""
    h, w = digit.shape
    mass = digit.sum(dtype=np.float64)
    cy = float((digit.sum(axis=1) * np.arange(h)).sum() / mass)
    cx = float((digit.sum(axis=0) * np.arange(w)).sum() / mass)
    # one pixel of room on each side for the fractional shift, so clamp to 1..frame-1
    ty = min(max(CENTRE[0] - cy, 0.0), frame - h - 1.0) if h < frame else 0.0
    tx = min(max(CENTRE[1] - cx, 0.0), frame - w - 1.0) if w < frame else 0.0
    top, left = int(np.floor(ty)), int(np.floor(tx))
    fy, fx = F32(ty - top), F32(tx - left)
    out = np.zeros((frame + 1, frame + 1), dtype=F32)
    # bilinear: each source pixel spreads over the 2x2 output pixels it now overlaps
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            if wy * wx:
                out[top + dy:top + dy + h, left + dx:left + dx + w] += digit * (wy * wx)
    return out[:frame, :frame]
