"""Superseded prototype: the bundled MNIST digits and typeset digits mixed in one IDX folder.

The product is ``python -m training.typeset`` (which wrote ``data/typeset-digits/``) with
``python -m training mnist --data data/mnist-train-10k --extra-data data/typeset-digits``,
which keeps the validation split MNIST-only. This script still writes the prototype's mixed
folder (for ``python -m training mnist --data <out>``, where a seeded slice of the typeset
digits also validates), so the experiment in docs/BENCHMARKS.md can be rerun; the
rendering is ``training.typeset``'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.idx import idx_bytes, read_idx  # noqa: E402
from training.typeset import TRAIN_FAMILIES, find_fonts, is_training_font, render_digits  # noqa: E402

__all__ = ["TRAIN_FAMILIES", "is_training_font", "main"]


def main(argv: list[str] | None = None) -> None:
    """Command line: write the mixed training folder to --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mnist", type=Path, default=Path("data/mnist-train-10k"))
    parser.add_argument("--per-digit-font", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    fonts = {n: f for n, f in find_fonts().items() if is_training_font(n)}
    typeset, digits = render_digits(fonts, args.per_digit_font, args.seed)
    images = np.concatenate([read_idx(args.mnist / "train-images-idx3-ubyte.gz"), typeset])
    labels = np.concatenate([read_idx(args.mnist / "train-labels-idx1-ubyte.gz"), digits])
    mixed = np.random.default_rng(args.seed).permutation(len(images))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train-images-idx3-ubyte.gz").write_bytes(idx_bytes(images[mixed]))
    (args.out / "train-labels-idx1-ubyte.gz").write_bytes(idx_bytes(labels[mixed]))
    print(f"{len(fonts)} training fonts, {len(typeset)} typeset + {len(images) - len(typeset)} "
          f"MNIST digits -> {args.out}")


if __name__ == "__main__":
    main()
