"""Typeset digits for training: every digit in some of the machine's fonts, as MNIST IDX files.

MNIST is handwriting; typeset digits it lacks (a "1" with a flag and no foot, serif 5s and
9s) were the default model's main errors on typeset pictures. This renders each digit in
each font of the training families (``TRAIN_FAMILIES``: DejaVu, Liberation, GNU FreeFont,
URW's Nimbus and URW families) at random sizes, places, angles (+-10 degrees) and colours of
either polarity, normalises every picture with ``model.digit_image.normalize_digit`` exactly
as the service prepares a picture it receives, and writes the 28x28 results as a folder of
gzipped IDX files (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``) with a
README saying how it was made: the layout ``python -m training mnist --data`` reads, meant
for ``--extra-data`` (training split only). Every other font family on the machine stays
held out, so ``bench/image_accuracy.py`` can score fonts the model never saw.

``python -m training.typeset --out data/typeset-digits`` made the committed folder; the
same command on a machine with the same font packages gives the same bytes.
"""

from __future__ import annotations

import argparse
import colorsys
import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from model.artifact import write_atomic
from model.digit_image import normalize_digit
from model.idx import idx_bytes

from .argtypes import positive_int
from .errors import DataError

#: families without real digits, or whose digits are not Latin numerals
SKIP_FAMILIES = ("D050000L", "Standard Symbols", "Math", "Symbol", "Dingbat")
#: font families rendered for training; every other family is held out for evaluation
TRAIN_FAMILIES = ("DejaVu", "Liberation", "Free", "Nimbus", "URW")
#: family prefix -> (Debian package, licence) of the training fonts, for the README
FONT_SOURCES: dict[str, tuple[str, str]] = {
    "DejaVu": ("fonts-dejavu-core, fonts-dejavu-extra",
               "Bitstream Vera Fonts licence; DejaVu changes in the public domain"),
    "Liberation": ("fonts-liberation", "GPL-2 with the font exception (Red Hat)"),
    "Free": ("fonts-freefont-ttf", "GPL-3+ with the GNU FreeFont font exception"),
    "Nimbus": ("fonts-urw-base35", "AGPL-3 with the font exception (URW++)"),
    "URW": ("fonts-urw-base35", "AGPL-3 with the font exception (URW++)"),
}
IMAGES_FILE = "train-images-idx3-ubyte.gz"
LABELS_FILE = "train-labels-idx1-ubyte.gz"
README_FILE = "README.md"
DEFAULT_PER_DIGIT_FONT = 3
DEFAULT_SEED = 1


def find_fonts() -> dict[str, str]:
    """{"<family> <style>": font file} of every Latin font face on the machine (fontconfig's
    ``fc-list``), one file per family and style, in the order of their sorted ``fc-list``
    lines (file paths first); symbol fonts left out."""
    try:
        out = subprocess.run(["fc-list", ":lang=en", "file", "family", "style"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise DataError("fc-list", f"cannot list the machine's fonts ({exc}); install "
                                   "fontconfig and the font packages") from None
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


def is_training_font(name: str, families: tuple[str, ...] = TRAIN_FAMILIES) -> bool:
    """Whether the font (``"<family> <style>"``) belongs to the training families."""
    return name.startswith(families)


def random_colours(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(ink, paper) RGB colours with enough luma contrast, of either polarity."""
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


def render_typeset(digit: int, font_file: str, rng: np.random.Generator) -> Image.Image:
    """One typeset digit as a picture a client could send: a random canvas (40-400 px
    high), glyph size, place, angle and colours, sometimes on a transparent background."""
    ink, paper = random_colours(rng)
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


def render_digits(fonts: dict[str, str], per_digit_font: int = DEFAULT_PER_DIGIT_FONT,
                  seed: int = DEFAULT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 28, 28) uint8, labels (n,) uint8): ``per_digit_font`` pictures of each
    digit in each font, normalised as served pictures are, in a seeded shuffled order;
    n = len(fonts) * 10 * per_digit_font."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for path in fonts.values():
        for digit in range(10):
            for _ in range(per_digit_font):
                picture = np.asarray(render_typeset(digit, path, rng))
                images.append(normalize_digit(picture).round().astype(np.uint8))
                labels.append(digit)
    order = rng.permutation(len(images))
    return np.stack(images)[order], np.array(labels, dtype=np.uint8)[order]


def _source(name: str) -> tuple[str, str]:
    """(Debian package, licence) of a training font, by its family prefix."""
    for prefix, source in FONT_SOURCES.items():
        if name.startswith(prefix):
            return source
    return ("(unknown package)", "(check the font's licence)")


def readme(fonts: dict[str, str], labels: np.ndarray, files: dict[str, bytes],
           command: str) -> str:
    """The folder's README: what it is, how it was made, from which fonts, licences."""
    counts = Counter(int(label) for label in labels)
    per_digit = f"{counts[0]:,} of each digit" if len(set(counts.values())) == 1 else \
        "per digit " + ", ".join(f"{d}: {counts[d]}" for d in range(10))
    rows = "\n".join(f"| {name} | `{path}` | {_source(name)[0]} |"
                     for name, path in fonts.items())
    licences = "\n".join(f"- {package}: {licence}"
                         for package, licence in dict(FONT_SOURCES.values()).items())
    sums = "\n".join(f"| `{name}` | `{hashlib.sha256(data).hexdigest()}` |"
                     for name, data in files.items())
    return f"""# Typeset digits (generated)

{len(labels):,} digits typeset in {len(fonts)} font faces whose family starts with
{", ".join(TRAIN_FAMILIES)}, as MNIST-layout IDX files (gzip, uint8, {len(labels)}x28x28 white
on black, and their labels 0..9; {per_digit}). Each is a picture rendered at a
random size (40-400 px canvas), place, angle (+-10 degrees) and ink/paper colour of either
polarity (sometimes on a transparent background), then normalised by
`model.digit_image.normalize_digit` exactly as the service prepares a picture it receives.

Use: extra *training* digits for the digit model, beside MNIST; the validation split and
early stopping stay MNIST-only:

    python -m training mnist --data data/mnist-train-10k --extra-data data/typeset-digits

Fonts of other families (Noto, Cantarell, Caladea, Carlito, C059, P052, Z003...) are not
here: `bench/image_accuracy.py` scores them as fonts the model never saw.

## How it was made, how to regenerate

    {command}

(`training/typeset.py`; fonts listed by fontconfig's `fc-list`, rendered by Pillow's FreeType.)
The same command on a machine with the same font packages and Pillow gives the same bytes;
other font versions give a set of the same kind, not the same bytes.

| file | sha256 |
| --- | --- |
{sums}

## Fonts and licences

The pictures are renderings of digit glyphs; no font file or outline is copied here.

| font | file | Debian package |
| --- | --- | --- |
{rows}

{licences}
"""


def write_folder(out: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` ({name: bytes}) as the folder ``out``, atomically: they are written
    into a new folder beside it, which is then renamed into place, so ``out`` is never
    partly written. An existing ``out`` is replaced only if it holds nothing but these
    file names (it is another run's output), else DataError."""
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise DataError(out, "exists and is not a folder: choose another --out")
        others = sorted(p.name for p in out.iterdir() if p.name not in files)
        if others:
            raise DataError(out, f"holds other files ({', '.join(others[:5])}): refusing to "
                                 "replace it; choose an empty or new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex
    tmp, old = out.with_name(f".{out.name}.tmp-{tag}"), out.with_name(f".{out.name}.old-{tag}")
    tmp.mkdir()
    try:
        for name, data in files.items():
            write_atomic(tmp / name, data)
        if out.exists():
            os.rename(out, old)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def build(out: Path, per_digit_font: int = DEFAULT_PER_DIGIT_FONT, seed: int = DEFAULT_SEED,
          families: tuple[str, ...] = TRAIN_FAMILIES, command: str = "") -> dict:
    """Render the set from the machine's fonts of ``families`` (in name order) and write it
    to ``out``; returns a summary. DataError when no font of those families is installed."""
    fonts = dict(sorted((n, f) for n, f in find_fonts().items()
                        if is_training_font(n, families)))
    if not fonts:
        raise DataError("fc-list", f"no font of the families {', '.join(families)} is "
                                   "installed (Debian: fonts-dejavu-core, fonts-liberation, "
                                   "fonts-freefont-ttf, fonts-urw-base35)")
    images, labels = render_digits(fonts, per_digit_font, seed)
    files = {IMAGES_FILE: idx_bytes(images), LABELS_FILE: idx_bytes(labels)}
    files[README_FILE] = readme(fonts, labels, files, command).encode()
    write_folder(out, files)
    return {"out": str(out), "fonts": len(fonts), "digits": int(len(labels))}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.typeset",
        description="Render every digit in the machine's fonts of the training families "
        f"({', '.join(TRAIN_FAMILIES)}) at random sizes, places, angles and colours, "
        "normalise each picture as the service does, and write them atomically to OUT as "
        f"{IMAGES_FILE} and {LABELS_FILE} with a README. Use OUT with python -m training "
        "mnist --extra-data OUT. Exit codes: 0 done, 2 bad arguments, no such fonts or an "
        "OUT that holds other files, 1 anything else.",
        epilog="example:\n  python -m training.typeset --out data/typeset-digits",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True,
                        help="folder to write (replaced if it holds only an earlier set)")
    parser.add_argument("--per-digit-font", type=positive_int, default=DEFAULT_PER_DIGIT_FONT,
                        help=f"pictures of each digit in each font (default: "
                             f"{DEFAULT_PER_DIGIT_FONT})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"seed of sizes, places, angles, colours and order (default: "
                             f"{DEFAULT_SEED})")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    command = " ".join(["python -m training.typeset", *argv])
    try:
        summary = build(args.out, args.per_digit_font, args.seed, command=command)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{summary['digits']} typeset digits from {summary['fonts']} fonts -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
