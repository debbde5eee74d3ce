"""Prototype: the bundled MNIST digits plus typeset digits from some fonts, as IDX files.

Typeset digits that MNIST lacks (a "1" with a flag and no foot, serif 5s and 9s) are the
committed model's main errors on typeset pictures. This writes a training folder for
``python -m training mnist --data <out>``: the 10,000 bundled digits followed by typeset
digits rendered (``bench/typeset_digits.render_typeset``) in the fonts whose family starts
with one of ``TRAIN_FAMILIES`` and normalised by ``model.digit_image`` exactly as served
pictures are. The other families stay held out, so the benchmark can score fonts the model
never saw (``python bench/image_accuracy.py --model ... --held-out``).
"""

from __future__ import annotations

import argparse
import gzip
import struct
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.typeset_digits import find_fonts, render_typeset  # noqa: E402
from model.digit_image import normalize_digit  # noqa: E402
from model.idx import read_idx  # noqa: E402

#: font families used for training; every other family is held out for evaluation
TRAIN_FAMILIES = ("DejaVu", "Liberation", "Free", "Nimbus", "URW")


def is_training_font(name: str) -> bool:
    """Whether the font (``"<family> <style>"``) belongs to the training families."""
    return name.startswith(TRAIN_FAMILIES)


def write_idx(path: Path, array: np.ndarray) -> None:
    """array (uint8, 1 or 3 dims) as a gzipped IDX file."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + np.ascontiguousarray(array, np.uint8).tobytes()))


def main(argv: list[str] | None = None) -> None:
    """Command line: write the mixed training folder to --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mnist", type=Path, default=Path("data/mnist-train-10k"))
    parser.add_argument("--per-digit-font", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    images = [read_idx(args.mnist / "train-images-idx3-ubyte.gz")]
    labels = [read_idx(args.mnist / "train-labels-idx1-ubyte.gz")]
    fonts = {n: f for n, f in find_fonts().items() if is_training_font(n)}
    typeset, digits = [], []
    for path in fonts.values():
        for digit in range(10):
            for _ in range(args.per_digit_font):
                picture = np.asarray(render_typeset(digit, path, rng))
                typeset.append(normalize_digit(picture).round().astype(np.uint8))
                digits.append(digit)
    order = rng.permutation(len(typeset))  # mixed, so seeded splits take some of each
    images.append(np.stack(typeset)[order])
    labels.append(np.array(digits, dtype=np.uint8)[order])
    args.out.mkdir(parents=True, exist_ok=True)
    all_images, all_labels = np.concatenate(images), np.concatenate(labels)
    mixed = rng.permutation(len(all_images))
    write_idx(args.out / "train-images-idx3-ubyte.gz", all_images[mixed])
    write_idx(args.out / "train-labels-idx1-ubyte.gz", all_labels[mixed])
    print(f"{len(fonts)} training fonts, {len(typeset)} typeset + {len(images[0])} MNIST "
          f"digits -> {args.out}")


if __name__ == "__main__":
    main()
