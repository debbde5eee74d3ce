"""Realistic digit pictures for the image-accuracy benchmark, written to a folder.

Two kinds, as files a client would send (PNG or JPEG), labelled by their folder
(``<out>/<kind>/<label>/<name>.png``):

- ``typeset``: every digit in every Latin font on the machine (``fc-list :lang=en``, symbol
  fonts left out), at random sizes, positions, rotations (+-10 degrees), ink and paper
  colours of either polarity, sometimes on a transparent background, with noise and JPEG
  compression;
- ``handwriting``: MNIST digits the model never trained on (the official test set, read
  only here, never by the trainer), upscaled 3-12x, blurred, thickened or thinned, and
  printed on paper-coloured backgrounds or inverted, then saved the same ways.

Nothing written here is committed: ``bench/image_accuracy.py`` makes a temporary folder.
``python bench/typeset_digits.py --out /tmp/digits`` writes a set to look at.
"""

from __future__ import annotations

import argparse
import colorsys
import io
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

#: families without real digits or whose digits are not Latin numerals
SKIP_FAMILIES = ("D050000L", "Standard Symbols", "Math", "Symbol", "Dingbat")


def find_fonts() -> dict[str, str]:
    """{font name: file} of every Latin font face on the machine (fontconfig), one per
    family and style."""
    out = subprocess.run(["fc-list", ":lang=en", "file", "family", "style"],
                         capture_output=True, text=True, check=True).stdout
    fonts: dict[str, str] = {}
    for line in sorted(out.splitlines()):
        path, _, rest = line.partition(": ")
        family = rest.split(":")[0].split(",")[0].strip()
        style = rest.partition("style=")[2].split(",")[0].strip() or "Regular"
        if any(s in family for s in SKIP_FAMILIES) or not path.endswith((".ttf", ".otf",
                                                                          ".t1", ".pfb")):
            continue
        fonts.setdefault(f"{family} {style}", path)
    return fonts


def _colours(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(ink, paper) RGB colours with enough luma contrast, either polarity."""
    while True:
        ink_l, paper_l = rng.uniform(0, 0.35), rng.uniform(0.7, 1.0)
        if rng.random() < 0.3:  # light ink on dark paper (a blackboard, a dark-mode app)
            ink_l, paper_l = 1 - ink_l, 1 - paper_l
        ink = colorsys.hls_to_rgb(rng.random(), ink_l, rng.uniform(0, 0.9))
        paper = colorsys.hls_to_rgb(rng.random(), paper_l, rng.uniform(0, 0.5))
        rgb = [tuple(int(255 * c) for c in col) for col in (ink, paper)]
        luma = [0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] for c in rgb]
        if abs(luma[0] - luma[1]) > 90:
            return rgb[0], rgb[1]


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


def render_typeset(digit: int, font_file: str, rng: np.random.Generator) -> Image.Image:
    """One typeset digit as a picture: random canvas, size, place, angle and colours."""
    ink, paper = _colours(rng)
    height = int(rng.integers(40, 400))
    width = int(height * rng.uniform(0.8, 1.6))
    size = max(12, int(height * rng.uniform(0.3, 0.8)))
    font = ImageFont.truetype(font_file, size)
    transparent = rng.random() < 0.15
    glyph = Image.new("L", (size * 2, size * 2), 0)
    ImageDraw.Draw(glyph).text((size, size), str(digit), font=font, fill=255, anchor="mm")
    glyph = glyph.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BICUBIC)
    glyph = glyph.crop(glyph.getbbox())
    scale = min(1.0, 0.9 * height / glyph.height, 0.9 * width / glyph.width)
    if scale < 1:
        glyph = glyph.resize((max(1, int(glyph.width * scale)), max(1, int(glyph.height * scale))),
                             Image.Resampling.LANCZOS)
    x = int(rng.integers(0, width - glyph.width + 1))
    y = int(rng.integers(0, height - glyph.height + 1))
    if transparent:
        img = Image.new("RGBA", (width, height), (*paper, 0))
        img.paste(Image.new("RGBA", glyph.size, (*ink, 255)), (x, y), glyph)
        return img
    img = Image.new("RGB", (width, height), paper)
    img.paste(Image.new("RGB", glyph.size, ink), (x, y), glyph)
    return img


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
    ink, paper = _colours(rng)
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
