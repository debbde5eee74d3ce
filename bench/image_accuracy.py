"""Accuracy of a digit model on real-looking pictures: plain resize vs MNIST preprocessing.

Generates the picture set of ``bench/typeset_digits.py`` in a temporary folder (or reads
``--dir``), decodes every file with ``service.imaging.decode_image`` (the service's own
decoder), and scores the model twice:

- **plain resize**: grey (BT.601), resized to 28x28 with Pillow's antialiasing bicubic,
  inverted when the border is lighter than the middle (the polarity is given to this
  baseline for free: without it, dark-on-light pictures would all fail);
- **preprocessed**: ``model.digit_image.normalize_digit``, the MNIST procedure.

``make bench-images`` runs it on artifacts/mnist/1; ``--by-font`` adds one line per font.
"typeset, fonts never trained on" are the families outside
``training.typeset.TRAIN_FAMILIES`` (those of ``data/typeset-digits``), for models
trained with typeset digits.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.typeset_digits import write_set  # noqa: E402
from model.digit_image import normalize_digit  # noqa: E402
from model.predictor import Predictor  # noqa: E402
from service.imaging import decode_image  # noqa: E402
from training.typeset import is_training_font  # noqa: E402


def plain_resize(pixels: np.ndarray) -> np.ndarray:
    """The naive input: grey, resized to 28x28, polarity made white-on-black."""
    img = Image.fromarray(pixels)
    if img.mode in ("LA", "RGBA"):  # composite on white, as the preprocessing does
        white = Image.new(img.mode, img.size, (255,) * len(img.mode))
        img = Image.alpha_composite(white.convert("RGBA"), img.convert("RGBA"))
    grey = np.asarray(img.convert("L").resize((28, 28), Image.Resampling.BICUBIC),
                      dtype=np.float32)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return 255 - grey if np.median(border) > np.median(grey[7:21, 7:21]) else grey


def load(folder: Path) -> list[tuple[str, int, str, np.ndarray]]:
    """[(kind, label, font or source, decoded pixels)] of every picture under folder."""
    items = []
    for path in sorted(folder.glob("*/*/*.*")):
        kind, label = path.parts[-3], int(path.parts[-2])
        source = path.stem.rsplit("_", 1)[0]
        items.append((kind, label, source, decode_image(path.read_bytes())))
    return items


def score(model: Predictor, items: list, by_font: bool) -> dict:
    """Accuracy per kind (and per font) for both inputs, and the preprocessing's speed."""
    plain = np.stack([plain_resize(p) for _, _, _, p in items])
    started = time.perf_counter()
    prepared = np.stack([normalize_digit(p) for _, _, _, p in items])
    ms = (time.perf_counter() - started) / len(items) * 1000
    labels = np.array([label for _, label, _, _ in items])
    hits = {"plain resize": model.predict(plain).argmax(1) == labels,
            "preprocessed": model.predict(prepared).argmax(1) == labels}
    groups: dict[str, list[int]] = defaultdict(list)
    for i, (kind, _, source, _) in enumerate(items):
        groups[kind].append(i)
        if kind == "typeset" and not is_training_font(source.replace("_", " ")):
            groups["typeset, fonts never trained on"].append(i)
        if by_font and kind == "typeset":
            groups[f"typeset/{source}"].append(i)
    report = {name: {"n": len(idx), **{k: round(float(h[idx].mean()), 4)
                                       for k, h in hits.items()}}
              for name, idx in groups.items()}
    report["preprocessing ms per picture"] = round(ms, 2)
    return report


def main(argv: list[str] | None = None) -> None:
    """Command line: score --model on a generated (or given) picture set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("artifacts/mnist/1"))
    parser.add_argument("--dir", type=Path, help="an existing set (default: generate one)")
    parser.add_argument("--per-font", type=int, default=5)
    parser.add_argument("--handwriting", type=int, default=3000)
    parser.add_argument("--mnist-test", type=Path, default=Path("../shared/data/mnist"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--by-font", action="store_true")
    args = parser.parse_args(argv)
    model = Predictor.from_artifact(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir
        if folder is None:
            folder = Path(tmp)
            test = args.mnist_test if (args.mnist_test / "t10k-images-idx3-ubyte.gz").exists() \
                else None
            write_set(folder, args.per_font, args.handwriting, args.seed, test)
        report = score(model, load(folder), args.by_font)
    print(json.dumps({"model": str(args.model), **report}, indent=1))


if __name__ == "__main__":
    main()
