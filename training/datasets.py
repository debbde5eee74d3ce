"""Data readers that validate what they read (IDX digits, Boston housing) and seeded splits."""

from __future__ import annotations

import csv
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.idx import decompress as _decompress
from model.idx import parse_idx as _parse_idx
from model.idx import read_bytes as _read_bytes
from model.idx import read_idx

from .errors import DataError

PathLike = str | os.PathLike[str]

# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------


def file_sha256(path: PathLike) -> str:
    """Hex sha256 of a file's bytes as stored (a ``.gz`` file is hashed compressed)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        raise DataError(path, f"cannot read: {e.strerror or e}") from e
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# IDX (the MNIST file format): the reader lives in model.idx, shared with the batch scorer
# ----------------------------------------------------------------------------------------------


def load_idx_images(path: PathLike) -> np.ndarray:
    """Read one IDX image file: an (n, h, w) uint8 array with n >= 1, pixels 0..255."""
    return _check_images(read_idx(path), path)


def _check_images(images: np.ndarray, path: PathLike) -> np.ndarray:
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(path, f"expected 3-D uint8 images (n, height, width), found "
                              f"{images.ndim}-D {images.dtype} data of shape {images.shape}")
    if images.shape[0] == 0:
        raise DataError(path, "no images (the header says 0)")
    return images


def _check_labels(labels: np.ndarray, path: PathLike) -> np.ndarray:
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(path, f"expected 1-D uint8 labels, found {labels.ndim}-D {labels.dtype} "
                              f"data of shape {labels.shape}")
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        first = int(bad[0])
        raise DataError(path, f"label {labels[first]} is not a digit 0..9 ({bad.size} of "
                              f"{labels.size} labels are out of range; records counted from 0)",
                        f"record {first}")
    return labels


# ----------------------------------------------------------------------------------------------
# digits: a folder of MNIST-layout IDX files
# ----------------------------------------------------------------------------------------------

_DIGIT_FILES = {
    "train-images": "train-images-idx3-ubyte",
    "train-labels": "train-labels-idx1-ubyte",
    "t10k-images": "t10k-images-idx3-ubyte",
    "t10k-labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True, eq=False)
class DigitsData:
    """MNIST-layout digits read from a folder.

    Attributes:
        train_images: (n, h, w) uint8, pixels 0..255 (h = w = 28 for MNIST and Fashion-MNIST).
        train_labels: (n,) uint8, classes 0..9.
        test_images: (m, h, w) uint8 from the ``t10k-*`` files, or None when they are absent.
        test_labels: (m,) uint8, or None.
        files: role (``"train-images"``, ``"train-labels"``, ``"t10k-images"``,
            ``"t10k-labels"``) -> the path read; only the roles found.
        sha256: file name (e.g. ``"train-images-idx3-ubyte.gz"``) -> hex sha256 of its bytes
            as stored.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    files: dict[str, Path]
    sha256: dict[str, str]

    @property
    def image_shape(self) -> tuple[int, int]:
        """(h, w) of every image."""
        return (int(self.train_images.shape[1]), int(self.train_images.shape[2]))


def _find_idx(directory: Path, base: str) -> Path | None:
    """``base`` or ``base.gz`` in ``directory``; both present is ambiguous, so an error."""
    found = [p for p in (directory / base, directory / f"{base}.gz") if p.is_file()]
    if len(found) == 2:
        raise DataError(directory, f"both {base} and {base}.gz are present: keep one")
    return found[0] if found else None


def _read_pair(images_path: Path, labels_path: Path,
               sha256: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Read and cross-check one images/labels pair, recording each file's sha256."""
    arrays = []
    for path in (images_path, labels_path):
        raw = _read_bytes(path)
        sha256[path.name] = hashlib.sha256(raw).hexdigest()
        arrays.append(_parse_idx(_decompress(raw, path), path))
    images = _check_images(arrays[0], images_path)
    labels = _check_labels(arrays[1], labels_path)
    if len(images) != len(labels):
        raise DataError(labels_path, f"{images_path.name} has {len(images)} images but "
                                     f"{labels_path.name} has {len(labels)} labels")
    return images, labels


def load_digits(directory: PathLike) -> DigitsData:
    """Read MNIST-layout IDX files from ``directory``.

    Needs ``train-images-idx3-ubyte[.gz]`` and ``train-labels-idx1-ubyte[.gz]``; reads
    ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]`` as the test set when
    both are present. Images may be any h x w (the same for train and test); labels must be
    0..9 and as many as the images. Raises DataError naming the file and the problem.
    """
    directory = Path(directory)
    expected = ", ".join(f"{base}[.gz]" for base in _DIGIT_FILES.values())
    if not directory.is_dir():
        raise DataError(directory, f"not a folder: expected a folder holding {expected} "
                                   "(the t10k pair is optional)")
    files = {role: p for role, base in _DIGIT_FILES.items()
             if (p := _find_idx(directory, base)) is not None}
    missing = [f"{_DIGIT_FILES[r]}[.gz]" for r in ("train-images", "train-labels")
               if r not in files]
    if missing:
        raise DataError(directory, f"missing {' and '.join(missing)} (expected {expected}; "
                                   "the t10k pair is optional)")
    has_test = ["t10k-images" in files, "t10k-labels" in files]
    if any(has_test) and not all(has_test):
        present, absent = ("t10k-images", "t10k-labels") if has_test[0] else \
                          ("t10k-labels", "t10k-images")
        raise DataError(directory, f"{files[present].name} is present but "
                                   f"{_DIGIT_FILES[absent]}[.gz] is missing: the test set needs "
                                   "both files (or neither)")

    sha256: dict[str, str] = {}
    train_images, train_labels = _read_pair(files["train-images"], files["train-labels"], sha256)
    test_images = test_labels = None
    if all(has_test):
        test_images, test_labels = _read_pair(files["t10k-images"], files["t10k-labels"], sha256)
        if test_images.shape[1:] != train_images.shape[1:]:
            h, w = test_images.shape[1:]
            raise DataError(files["t10k-images"], f"images are {h}x{w} but "
                                                  f"{files['train-images'].name} has "
                                                  f"{train_images.shape[1]}x"
                                                  f"{train_images.shape[2]} images")
    return DigitsData(train_images, train_labels, test_images, test_labels, files, sha256)


@dataclass(frozen=True, eq=False)
class ExtraDigits:
    """Extra training digits read from one folder (``--extra-data``).

    Attributes:
        folder: the folder read.
        images: (n, h, w) uint8, pixels 0..255.
        labels: (n,) uint8, classes 0..9.
        sha256: file name -> hex sha256 of its bytes as stored.
    """

    folder: Path
    images: np.ndarray
    labels: np.ndarray
    sha256: dict[str, str]


def load_extra_digits(directory: PathLike, image_shape: tuple[int, int]) -> ExtraDigits:
    """The train pair of an MNIST-layout folder, as extra training digits of ``image_shape``.

    A folder with ``t10k-*`` files is refused: extra digits only ever train, so a test set
    there would silently go unused (or, worse, be an official test set trained on). Raises
    DataError naming the folder or file and the problem.
    """
    data = load_digits(directory)
    folder = Path(directory)
    if data.test_images is not None:
        raise DataError(folder, "extra training data must not hold t10k-* files: they would "
                                "be trained on, never tested on; give a folder with only the "
                                "train-* pair")
    if data.image_shape != tuple(image_shape):
        h, w = data.image_shape
        raise DataError(data.files["train-images"], f"images are {h}x{w} but the training "
                                                    f"data's are {image_shape[0]}x"
                                                    f"{image_shape[1]}")
    return ExtraDigits(folder, data.train_images, data.train_labels, data.sha256)


def load_labelled_digits(directory: PathLike) -> tuple[np.ndarray, np.ndarray, str]:
    """The labelled images to score in ``directory``: the t10k pair if present (a test set),
    else the train pair. Returns (images (n, h, w) uint8, labels (n,) uint8, description)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(directory, "not a folder: expected IDX files (t10k-* or train-* pair)")
    for prefix in ("t10k", "train"):
        images_path = _find_idx(directory, _DIGIT_FILES[f"{prefix}-images"])
        labels_path = _find_idx(directory, _DIGIT_FILES[f"{prefix}-labels"])
        if images_path and labels_path:
            images, labels = _read_pair(images_path, labels_path, {})
            return images, labels, f"{images_path.name} + {labels_path.name}"
    raise DataError(directory, "no labelled images: expected t10k-images-idx3-ubyte[.gz] with "
                               "t10k-labels-idx1-ubyte[.gz], or the train-* pair")


# ----------------------------------------------------------------------------------------------
# Boston housing: whitespace `housing.data` (14 numbers a line) or a CSV with a header
# ----------------------------------------------------------------------------------------------

FEATURES: list[str] = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX",
                       "PTRATIO", "B", "LSTAT"]
TARGET = "MEDV"
_COLUMNS = [*FEATURES, TARGET]


@dataclass(frozen=True, eq=False)
class HousingData:
    """Boston housing rows in file order.

    Attributes:
        X: (n, 13) float64, columns in ``FEATURES`` order whatever the file's order.
        y: (n,) float64, MEDV (median home value, $1000s).
        features: the 13 feature names, ``FEATURES``.
        sha256: hex sha256 of the file's bytes.
        path: the file read.
    """

    X: np.ndarray
    y: np.ndarray
    features: list[str]
    sha256: str
    path: Path


def _number(cell: str, path: PathLike, line: int, column: str) -> float:
    """One cell as a finite float, or a DataError naming the line and column."""
    text = cell.strip()
    where = f"line {line}, column {column}"
    if not text:
        raise DataError(path, "empty cell", where)
    try:
        value = float(text)
    except ValueError:
        raise DataError(path, f"{text!r} is not a number", where) from None
    if not math.isfinite(value):
        raise DataError(path, f"{text!r} is not a finite number", where)
    return value


def _is_header(line: str) -> bool:
    # A letter outside a number makes a header: "1e-3" or "nan" in a first data row do not.
    for token in line.replace(",", " ").split():
        if any(c.isalpha() for c in token):
            try:
                float(token)
            except ValueError:
                return True
    return False


def _housing_header(cells: list[str], path: PathLike, line: int) -> list[int]:
    """For each of ``_COLUMNS``, its position in the CSV header; DataError if names are off."""
    names = [c.strip() for c in cells]
    record = f"line {line} (header)"
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(path, f"duplicate columns: {', '.join(duplicates)}", record)
    problems = []
    missing = [c for c in _COLUMNS if c not in names]
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    extra = [n for n in names if n not in _COLUMNS]
    if extra:
        problems.append(f"unexpected columns: {', '.join(repr(n) for n in extra)}")
    if problems:
        raise DataError(path, "; ".join(problems) + f" (expected exactly {' '.join(_COLUMNS)}, "
                                                    "in any order)", record)
    return [names.index(c) for c in _COLUMNS]


def load_housing(path: PathLike) -> HousingData:
    """Read Boston housing from a whitespace ``housing.data`` file or a CSV with a header.

    The format is chosen by the first non-blank line: a letter (outside a number) makes it a
    CSV header, which must name the 13 ``FEATURES`` and ``MEDV`` exactly once each, in any
    order, and nothing else; otherwise every line must hold exactly 14 whitespace-separated
    numbers in ``FEATURES`` + ``MEDV`` order. Blank lines are skipped; every cell must be a
    finite number. Errors name the 1-based physical line (and column) of the problem.
    """
    path = Path(path)
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(path, f"not UTF-8 text (byte {e.start}): expected housing.data or a "
                              "CSV file") from None
    lines = text.splitlines()
    numbered = [(i, line) for i, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise DataError(path, f"empty file: expected a CSV header naming {' '.join(_COLUMNS)} "
                              "or lines of 14 numbers")

    rows: list[list[float]] = []
    first_line, first = numbered[0]
    if _is_header(first):
        order = _housing_header(next(csv.reader([first])), path, first_line)
        for number, line in numbered[1:]:
            cells = next(csv.reader([line]))
            if len(cells) != len(order):
                raise DataError(path, f"expected {len(order)} comma-separated fields, found "
                                      f"{len(cells)}", f"line {number}")
            rows.append([_number(cells[j], path, number, name)
                         for j, name in zip(order, _COLUMNS, strict=True)])
        if not rows:
            raise DataError(path, "no data rows after the header")
    else:
        for number, line in numbered:
            cells = line.split()
            if len(cells) != len(_COLUMNS):
                hint = (" (comma-separated values need a header line naming the columns)"
                        if "," in line else "")
                raise DataError(path, f"expected {len(_COLUMNS)} numbers, found {len(cells)}"
                                      f"{hint}", f"line {number}")
            rows.append([_number(c, path, number, name)
                         for c, name in zip(cells, _COLUMNS, strict=True)])

    table = np.array(rows, dtype=np.float64)
    return HousingData(X=table[:, :-1].copy(), y=table[:, -1].copy(), features=list(FEATURES),
                       sha256=hashlib.sha256(raw).hexdigest(), path=path)


# ----------------------------------------------------------------------------------------------
# splits
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Split:
    """Row indices of a train/validation/test split: disjoint int64 arrays, each ascending."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __repr__(self) -> str:
        return f"Split(train={self.train.size}, val={self.val.size}, test={self.test.size})"


def _slice_size(fraction: float, n: int, name: str) -> int:
    """round(fraction * n), at least 1 when fraction > 0; a fraction outside [0, 1) is refused."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {fraction}")
    return max(1, round(fraction * n)) if fraction > 0 else 0


def _sorted(indices: np.ndarray) -> np.ndarray:
    return np.sort(indices).astype(np.int64)


def housing_split(n: int, val_fraction: float = 0.15, seed: int = 0) -> Split:
    """The default housing protocol on ``n`` rows in file order.

    The training part is the first ``int(0.8 * n)`` rows (506 -> rows 0..403) and the test set
    is the rest (506 -> rows 404..505, 102 rows). Validation is a seeded random subset of the
    training part of ``round(val_fraction * int(0.8 * n))`` rows (at least 1 when
    ``val_fraction > 0``; 404 -> 61 at 0.15); training is the remainder of the part. The same
    ``(n, val_fraction, seed)`` always gives the same split (``numpy.random.default_rng(seed)``).
    Raises ValueError when a part would be empty.
    """
    n_part = int(0.8 * n)
    n_val = _slice_size(val_fraction, n_part, "val_fraction")
    if n_part - n_val < 1 or n - n_part < 1:
        raise ValueError(f"{n} rows are too few for a train/validation/test split")
    chosen = np.random.default_rng(seed).permutation(n_part)
    return Split(train=_sorted(chosen[n_val:]), val=_sorted(chosen[:n_val]),
                 test=np.arange(n_part, n, dtype=np.int64))


def random_split(n: int, test_fraction: float, val_fraction: float, seed: int = 0) -> Split:
    """A seeded random split of ``n`` rows (MNIST without t10k files, validation slices).

    One permutation by ``numpy.random.default_rng(seed)``: its first ``round(test_fraction * n)``
    rows are the test set, the next ``round(val_fraction * n)`` the validation set, the rest
    the training set (a non-zero fraction gets at least 1 row; a zero fraction none). Both
    fractions are of the whole ``n``. Raises ValueError when the training set would be empty.
    """
    n_test = _slice_size(test_fraction, n, "test_fraction")
    n_val = _slice_size(val_fraction, n, "val_fraction")
    if n - n_test - n_val < 1:
        raise ValueError(f"{n} rows are too few for test_fraction={test_fraction} and "
                         f"val_fraction={val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    return Split(train=_sorted(order[n_test + n_val:]), val=_sorted(order[n_test:n_test + n_val]),
                 test=_sorted(order[:n_test]))
