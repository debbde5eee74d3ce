"""Realistic digit pictures for the image-accuracy benchmark, written to a folder.

Two kinds, as files a client would send (PNG or JPEG), labelled by their folder
(``<out>/<kind>/<label>/<name>.png``):

- ``typeset``: every digit in every Latin font on the machine (``fc-list :lang=en``, symbol
  fonts left out), at random sizes, positions, rotations (+-10 degrees), ink and paper
  colours of either polarity, sometimes on a transparent background (the renderer of
  ``training.typeset``, which makes the typeset training digits), with noise and JPEG
  compression;
- ``handwriting``: MNIST digits the model never trained on (the official test set, read
  only here, never by the trainer), upscaled 3-12x, blurred, thickened or thinned, and
  printed on paper-coloured backgrounds or inverted, then saved the same ways.

Nothing written here is committed: ``bench/image_accuracy.py`` makes a temporary folder.
``python bench/typeset_digits.py --out /tmp/digits`` writes a set to look at.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.typeset import find_fonts, random_colours, render_typeset  # noqa: E402


def _finish(img: Image.Image, rng: np.random.Generator) -> tuple[bytes, str]:
    """img with sensor noise added, saved as PNG or JPEG (random quality): (bytes, ext)."""
    if img.mode == "RGB" and rng.random() < 0.5:
        arr = np.asarray(img, dtype=np.float32)
        arr = arr + rng.normal(0, rng.uniform(2, 12), arr.shape[:2])[:, :, None]
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    if img.mode == "RGB" and rng.random() < 0.5:
        img.save(buf, "JPEG", quality=int(rng.integers(30, 96)))
        return buf.getvalue(), "jpg"
    img.save(buf, "PNG")
    return buf.getvalue(), "png"


def render_handwriting(digit28: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """One MNIST digit (28x28, white on black) printed as a photo/scan-like picture."""
    factor = rng.uniform(3, 12)
    side = int(28 * factor)
    img = Image.fromarray(digit28).resize((side, side), Image.Resampling.BICUBIC)
    stroke = rng.random()
    k = 2 * int(factor / 3) + 1  # odd filter size proportional to the upscale
    if stroke < 0.25:
        img = img.filter(ImageFilter.MaxFilter(k))  # a thicker pen
    elif stroke < 0.4:
        img = img.filter(ImageFilter.MinFilter(max(3, k // 2 * 2 - 1)))  # a finer pen
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 0.25 * factor)))
    ink, paper = random_colours(rng)
    height = int(side * rng.uniform(1.0, 1.6))
    width = int(side * rng.uniform(1.0, 1.6))
    at = (int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1)))
    if rng.random() < 0.2:  # a browser canvas export: hard-edged strokes on transparency
        canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        stroke = img.point(lambda v: 255 if v > 100 else 0)
        canvas.paste(Image.new("RGBA", img.size, (*ink, 255)), at, stroke)
        return canvas
    canvas = Image.new("RGB", (width, height), paper)
    canvas.paste(Image.new("RGB", img.size, ink), at, img)
    return canvas


def write_set(out: Path, per_font: int = 3, handwriting: int = 2000, seed: int = 0,
              mnist_test: Path | None = None) -> dict[str, int]:
    """Write the pictures under ``out``; returns {kind: count}. ``per_font`` pictures of
    each digit per font; ``handwriting`` pictures from ``mnist_test`` (an IDX folder)."""
    rng = np.random.default_rng(seed)
    counts = {"typeset": 0, "handwriting": 0}
    for name, path in find_fonts().items():
        stem = name.replace(" ", "_")
        for digit in range(10):
            for i in range(per_font):
                data, ext = _finish(render_typeset(digit, path, rng), rng)
                target = out / "typeset" / str(digit) / f"{stem}_{i}.{ext}"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                counts["typeset"] += 1
    if mnist_test is not None and handwriting:
        from model.idx import read_idx
        images = read_idx(mnist_test / "t10k-images-idx3-ubyte.gz")
        labels = read_idx(mnist_test / "t10k-labels-idx1-ubyte.gz")
        for i in rng.choice(len(images), handwriting, replace=False):
            data, ext = _finish(render_handwriting(images[i], rng), rng)
            target = out / "handwriting" / str(labels[i]) / f"t10k_{i}.{ext}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            counts["handwriting"] += 1
    return counts


def main(argv: list[str] | None = None) -> None:
    """Command line: write a set to --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-font", type=int, default=3)
    parser.add_argument("--handwriting", type=int, default=2000)
    parser.add_argument("--mnist-test", type=Path, default=Path("../shared/data/mnist"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    test = args.mnist_test if (args.mnist_test / "t10k-images-idx3-ubyte.gz").exists() else None
    print(write_set(args.out, args.per_font, args.handwriting, args.seed, test))


if __name__ == "__main__":
    main()
