"""Data readers on the real bundled files and on corrupt copies of them; seeded splits."""

from __future__ import annotations

import gzip
import pickle
import re
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from training.datasets import (
    FEATURES,
    TARGET,
    file_sha256,
    housing_split,
    load_digits,
    load_housing,
    load_idx_images,
    random_split,
    read_idx,
)
from training.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
HOUSING_DATA = DATA / "housing" / "housing.data"
HOUSING_CSV = DATA / "housing" / "housing.csv"
DIGITS = DATA / "mnist-train-10k"
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file's bytes (uncompressed) for ``array``, stored big-endian."""
    dtypes = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtypes[code]).tobytes()


@pytest.fixture(scope="module")
def raw_images() -> bytes:
    """The bundled training images, decompressed: a 16-byte header and 10000x28x28 bytes."""
    return gzip.decompress((DIGITS / f"{TRAIN_IMAGES}.gz").read_bytes())


@pytest.fixture(scope="module")
def raw_labels() -> bytes:
    """The bundled training labels, decompressed: an 8-byte header and 10000 bytes."""
    return gzip.decompress((DIGITS / f"{TRAIN_LABELS}.gz").read_bytes())


@pytest.fixture(scope="module")
def bundled():
    return load_digits(DIGITS)


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------


def test_data_error_message_names_file_record_and_problem():
    e = DataError(Path("d/h.csv"), "expected 14 numbers, found 13", "line 17")
    assert str(e) == "d/h.csv: line 17: expected 14 numbers, found 13"
    assert (e.path, e.record, e.problem) == ("d/h.csv", "line 17", "expected 14 numbers, found 13")
    assert str(DataError("x.idx", "empty file")) == "x.idx: empty file"
    assert str(pickle.loads(pickle.dumps(e))) == str(e)


# ----------------------------------------------------------------------------------------------
# bundled data
# ----------------------------------------------------------------------------------------------


def test_bundled_digits_read_correctly(bundled):
    assert bundled.train_images.shape == (10000, 28, 28)
    assert bundled.train_images.dtype == np.uint8 and bundled.train_labels.dtype == np.uint8
    assert bundled.train_labels.shape == (10000,)
    counts = np.bincount(bundled.train_labels, minlength=10)
    assert counts.size == 10 and counts.sum() == 10000 and counts.min() > 800
    assert bundled.train_images.max() == 255 and bundled.train_images.min() == 0
    assert bundled.test_images is None and bundled.test_labels is None
    assert bundled.image_shape == (28, 28)
    assert set(bundled.files) == {"train-images", "train-labels"}
    for path in bundled.files.values():
        assert bundled.sha256[path.name] == file_sha256(path)


def test_bundled_housing_both_formats_read_identically():
    data = load_housing(HOUSING_DATA)
    csv = load_housing(HOUSING_CSV)
    assert data.X.shape == (506, 13) and data.y.shape == (506,)
    assert data.X.dtype == np.float64 and data.y.dtype == np.float64
    assert data.features == FEATURES and TARGET == "MEDV"
    # the first line of housing.data
    np.testing.assert_array_equal(data.X[0], [0.00632, 18, 2.31, 0, 0.538, 6.575, 65.2, 4.09, 1,
                                              296, 15.3, 396.9, 4.98])
    assert data.y[0] == 24.0 and data.y[-1] == 11.9
    np.testing.assert_array_equal(data.X, csv.X)
    np.testing.assert_array_equal(data.y, csv.y)
    assert data.sha256 == file_sha256(HOUSING_DATA) and data.path == HOUSING_DATA


def test_bundled_files_are_listed_with_their_sha256_and_no_test_set_is_bundled():
    files = [p for p in DATA.rglob("*") if p.is_file() and p.name != "README.md"]
    assert len(files) == 6  # housing (2), mnist-train-10k (2), typeset-digits (2)
    for path in files:
        # listed in data/README.md, or (generated data) in its own folder's README
        own = path.parent / "README.md"
        readme = (own if own.is_file() else DATA / "README.md").read_text()
        assert path.name in readme and file_sha256(path) in readme, path
    assert not [p for p in DATA.rglob("*t10k*")]


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/data/mnist is not on this machine")
def test_load_digits_reads_t10k_files_as_the_test_set(tmp_path, bundled):
    for name in (f"{TRAIN_IMAGES}.gz", f"{TRAIN_LABELS}.gz"):
        (tmp_path / name).symlink_to(DIGITS / name)
    for name in (f"{TEST_IMAGES}.gz", f"{TEST_LABELS}.gz"):
        (tmp_path / name).symlink_to(SHARED_MNIST / name)
    digits = load_digits(tmp_path)
    assert digits.test_images.shape == (10000, 28, 28) and digits.test_images.dtype == np.uint8
    assert digits.test_labels.shape == (10000,) and digits.test_labels.max() == 9
    assert set(digits.files) == {"train-images", "train-labels", "t10k-images", "t10k-labels"}
    assert digits.sha256[f"{TEST_LABELS}.gz"] == file_sha256(SHARED_MNIST / f"{TEST_LABELS}.gz")
    np.testing.assert_array_equal(digits.train_labels, bundled.train_labels)


# ----------------------------------------------------------------------------------------------
# IDX: good files in other shapes and encodings
# ----------------------------------------------------------------------------------------------


def test_raw_and_gzip_files_give_identical_arrays(tmp_path, raw_images, raw_labels, bundled):
    (tmp_path / TRAIN_IMAGES).write_bytes(raw_images)
    (tmp_path / TRAIN_LABELS).write_bytes(raw_labels)
    raw = load_digits(tmp_path)
    np.testing.assert_array_equal(raw.train_images, bundled.train_images)
    np.testing.assert_array_equal(raw.train_labels, bundled.train_labels)
    # gzip is recognised by its magic bytes, not by the name
    (tmp_path / "images.bin").write_bytes((DIGITS / f"{TRAIN_IMAGES}.gz").read_bytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "images.bin"), bundled.train_images)
    np.testing.assert_array_equal(load_idx_images(tmp_path / TRAIN_IMAGES), bundled.train_images)


@pytest.mark.parametrize("code, dtype", [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16),
                                         (0x0C, np.int32), (0x0D, np.float32),
                                         (0x0E, np.float64)])
def test_read_idx_converts_every_type_to_native_order(tmp_path, code, dtype):
    values = np.arange(24).reshape(2, 3, 4) * (1 if code in (0x08, 0x09) else -7)
    path = tmp_path / "x.idx"
    path.write_bytes(idx_bytes(values.astype(dtype), code))
    array = read_idx(path)
    assert array.dtype == np.dtype(dtype) and array.dtype.isnative
    np.testing.assert_array_equal(array, values.astype(dtype))
    array[0, 0, 0] = 1  # writable


def test_load_digits_accepts_any_image_size(tmp_path, raw_images):
    images = np.frombuffer(raw_images, np.uint8, offset=16).reshape(10000, 28, 28)[:5, 2:10, 3:15]
    (tmp_path / TRAIN_IMAGES).write_bytes(idx_bytes(images))
    (tmp_path / f"{TRAIN_LABELS}.gz").write_bytes(gzip.compress(idx_bytes(np.arange(5))))
    digits = load_digits(tmp_path)
    assert digits.image_shape == (8, 12)
    np.testing.assert_array_equal(digits.train_images, images)


# ----------------------------------------------------------------------------------------------
# IDX: corrupt files, each a DataError naming the file and the problem
# ----------------------------------------------------------------------------------------------

Corruption = Callable[[bytes], bytes]


def _flip_middle(data: bytes) -> bytes:
    z = bytearray(gzip.compress(data))
    for i in range(len(z) // 2, len(z) // 2 + 16):
        z[i] ^= 0xFF
    return bytes(z)


IDX_CORRUPTIONS: list[tuple[str, Corruption, list[str]]] = [
    ("truncated by 1 byte", lambda b: b[:-1],
     ["truncated: header says 10000 = 10000 bytes of uint8 data, file has 9999"]),
    ("truncated inside the header", lambda b: b[:6],
     ["header: truncated", "header is 8 bytes, file has 6"]),
    ("truncated before the dimensions", lambda b: b[:2], ["header: truncated", "file has 2"]),
    ("trailing bytes", lambda b: b + b"\x00\x07\x07",
     ["3 trailing bytes", "header says 10000 = 10000 bytes", "file has 10003"]),
    ("wrong magic", lambda b: b"\x08\x03" + b[2:], ["not an IDX file", "0x08 0x03"]),
    ("unknown dtype code", lambda b: b[:2] + b"\x0a" + b[3:],
     ["unknown data type code 0x0a", "0x08 uint8"]),
    ("zero dimensions", lambda b: b[:3] + b"\x00" + b[4:], ["number of dimensions 0"]),
    ("five dimensions", lambda b: b[:3] + b"\x05" + b[4:], ["number of dimensions 5"]),
    ("empty file", lambda b: b"", ["empty file"]),
    ("corrupt gzip stream", _flip_middle, ["corrupt gzip stream"]),
    ("truncated gzip stream", lambda b: gzip.compress(b)[:-20], ["corrupt gzip stream"]),
    ("gzip of a truncated file", lambda b: gzip.compress(b[:-1]), ["truncated", "file has 9999"]),
]


@pytest.mark.parametrize("corrupt, fragments", [c[1:] for c in IDX_CORRUPTIONS],
                         ids=[c[0] for c in IDX_CORRUPTIONS])
def test_corrupt_idx_file_is_a_data_error(tmp_path, raw_labels, corrupt, fragments):
    path = tmp_path / TRAIN_LABELS
    path.write_bytes(corrupt(raw_labels))
    with pytest.raises(DataError) as info:
        read_idx(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and info.value.path == str(path)
    for fragment in fragments:
        assert fragment in message


def test_truncated_image_file_names_the_dimensions(tmp_path, raw_images):
    path = tmp_path / f"{TRAIN_IMAGES}.gz"
    path.write_bytes(gzip.compress(raw_images[:-1000], compresslevel=1))
    with pytest.raises(DataError, match=re.escape(
            f"{path}: truncated: header says 10000x28x28 = 7840000 bytes of uint8 data, "
            "file has 7839000")):
        load_idx_images(path)


def _labels(raw_labels: bytes) -> np.ndarray:
    return np.frombuffer(raw_labels, np.uint8, offset=8)


# each: name, {file name: bytes maker(raw_images, raw_labels)}, file named in the error, fragments
FOLDER_CORRUPTIONS = [
    ("count mismatch",
     {TRAIN_LABELS: lambda im, lb: idx_bytes(_labels(lb)[:9999])},
     TRAIN_LABELS, [f"{TRAIN_IMAGES}.gz has 10000 images but {TRAIN_LABELS} has 9999 labels"]),
    ("label out of range",
     {TRAIN_LABELS: lambda im, lb: idx_bytes(np.where(np.arange(10000) == 41, 10, _labels(lb)))},
     TRAIN_LABELS, ["record 41: label 10 is not a digit 0..9"]),
    ("labels not uint8",
     {TRAIN_LABELS: lambda im, lb: idx_bytes(_labels(lb), 0x0C)},
     TRAIN_LABELS, ["expected 1-D uint8 labels, found 1-D int32"]),
    ("images not 3-D",
     {TRAIN_IMAGES: lambda im, lb: idx_bytes(np.frombuffer(im, np.uint8, offset=16)
                                             .reshape(10000, 784))},
     TRAIN_IMAGES, ["expected 3-D uint8 images", "(10000, 784)"]),
    ("only t10k images",
     {TEST_IMAGES: lambda im, lb: im},
     "", [f"{TEST_IMAGES} is present but {TEST_LABELS}[.gz] is missing"]),
    ("only t10k labels",
     {f"{TEST_LABELS}.gz": lambda im, lb: gzip.compress(lb)},
     "", [f"{TEST_LABELS}.gz is present but {TEST_IMAGES}[.gz] is missing"]),
    ("raw and gzip copies of one file",
     {TRAIN_LABELS: lambda im, lb: lb, f"{TRAIN_LABELS}.gz": lambda im, lb: gzip.compress(lb)},
     "", [f"both {TRAIN_LABELS} and {TRAIN_LABELS}.gz are present"]),
    ("t10k images of another size",
     {TEST_IMAGES: lambda im, lb: idx_bytes(np.zeros((3, 20, 20), np.uint8)),
      TEST_LABELS: lambda im, lb: idx_bytes(np.zeros(3, np.uint8))},
     TEST_IMAGES, ["images are 20x20 but", "28x28"]),
    ("t10k count mismatch",
     {TEST_IMAGES: lambda im, lb: idx_bytes(np.zeros((3, 28, 28), np.uint8)),
      TEST_LABELS: lambda im, lb: idx_bytes(np.zeros(4, np.uint8))},
     TEST_LABELS, [f"{TEST_IMAGES} has 3 images but {TEST_LABELS} has 4 labels"]),
    ("no images",
     {TRAIN_IMAGES: lambda im, lb: idx_bytes(np.zeros((0, 28, 28), np.uint8)),
      TRAIN_LABELS: lambda im, lb: idx_bytes(np.zeros(0, np.uint8))},
     TRAIN_IMAGES, ["no images"]),
]


@pytest.mark.parametrize("files, named, fragments", [c[1:] for c in FOLDER_CORRUPTIONS],
                         ids=[c[0] for c in FOLDER_CORRUPTIONS])
def test_inconsistent_digit_folder_is_a_data_error(tmp_path, raw_images, raw_labels, files,
                                                   named, fragments):
    # the bundled training pair, unless the variant writes its own version of a file
    for base in (TRAIN_IMAGES, TRAIN_LABELS):
        if base not in files and f"{base}.gz" not in files:
            (tmp_path / f"{base}.gz").symlink_to(DIGITS / f"{base}.gz")
    for name, make in files.items():
        (tmp_path / name).write_bytes(make(raw_images, raw_labels))
    with pytest.raises(DataError) as info:
        load_digits(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / named}: ")  # named "" is the folder itself
    for fragment in fragments:
        assert fragment in message


def test_missing_folder_or_files_list_what_is_expected(tmp_path):
    with pytest.raises(DataError, match="not a folder: expected a folder holding "
                                        r"train-images-idx3-ubyte\[\.gz\]"):
        load_digits(tmp_path / "nowhere")
    (tmp_path / f"{TRAIN_IMAGES}.gz").symlink_to(DIGITS / f"{TRAIN_IMAGES}.gz")
    with pytest.raises(DataError) as info:
        load_digits(tmp_path)
    assert str(info.value).startswith(f"{tmp_path}: missing {TRAIN_LABELS}[.gz] (expected ")
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "absent.idx")


# ----------------------------------------------------------------------------------------------
# housing: corrupt files
# ----------------------------------------------------------------------------------------------


def _edit_cell(line_number: int, column: str, value: str, sep: str) -> Callable[[list], list]:
    """Set one cell of a (1-based physical) line of a split file."""
    def edit(lines: list[str]) -> list[str]:
        cells = lines[line_number - 1].split(sep) if sep else lines[line_number - 1].split()
        cells[[*FEATURES, TARGET].index(column)] = value
        lines[line_number - 1] = (sep or " ").join(cells)
        return lines
    return edit


def _drop_last_field(line_number: int, sep: str) -> Callable[[list], list]:
    def edit(lines: list[str]) -> list[str]:
        lines[line_number - 1] = lines[line_number - 1].rsplit(sep or " ", 1)[0]
        return lines
    return edit


def _csv_columns(edit_header: Callable[[list], list],
                 edit_row: Callable[[list], list]) -> Callable[[list], list]:
    def edit(lines: list[str]) -> list[str]:
        head = ",".join(edit_header(lines[0].split(",")))
        return [head] + [",".join(edit_row(line.split(","))) for line in lines[1:]]
    return edit


# each: name, source file, edit of its lines, message (after "<path>: ")
HOUSING_CORRUPTIONS = [
    ("csv non-numeric cell", HOUSING_CSV, _edit_cell(17, "RM", "abc", ","),
     "line 17, column RM: 'abc' is not a number"),
    ("data non-numeric cell", HOUSING_DATA, _edit_cell(17, "RM", "abc", ""),
     "line 17, column RM: 'abc' is not a number"),
    ("data 13 numbers", HOUSING_DATA, _drop_last_field(5, ""),
     "line 5: expected 14 numbers, found 13"),
    ("data 15 numbers", HOUSING_DATA, lambda ls: ls[:4] + [ls[4] + " 1"] + ls[5:],
     "line 5: expected 14 numbers, found 15"),
    ("data comma-separated without header", HOUSING_DATA, lambda ls: [",".join(ls[0].split())],
     "line 1: expected 14 numbers, found 1 (comma-separated values need a header line"),
    ("csv 13 fields", HOUSING_CSV, _drop_last_field(5, ","),
     "line 5: expected 14 comma-separated fields, found 13"),
    ("csv missing column", HOUSING_CSV, _csv_columns(lambda c: c[:-1], lambda c: c[:-1]),
     "line 1 (header): missing columns: MEDV (expected exactly CRIM ZN"),
    ("csv extra column", HOUSING_CSV, _csv_columns(lambda c: [*c, "FOO"], lambda c: [*c, "1"]),
     "line 1 (header): unexpected columns: 'FOO'"),
    ("csv lower-case name", HOUSING_CSV, _csv_columns(lambda c: ["crim", *c[1:]], lambda c: c),
     "line 1 (header): missing columns: CRIM; unexpected columns: 'crim'"),
    ("csv duplicate column", HOUSING_CSV, _csv_columns(lambda c: [c[0], c[0], *c[2:]],
                                                       lambda c: c),
     "line 1 (header): duplicate columns: CRIM"),
    ("data NaN", HOUSING_DATA, _edit_cell(3, "CRIM", "nan", ""),
     "line 3, column CRIM: 'nan' is not a finite number"),
    ("csv NaN", HOUSING_CSV, _edit_cell(3, "MEDV", "NaN", ","),
     "line 3, column MEDV: 'NaN' is not a finite number"),
    ("csv infinity", HOUSING_CSV, _edit_cell(9, "B", "-inf", ","),
     "line 9, column B: '-inf' is not a finite number"),
    ("csv empty cell", HOUSING_CSV, _edit_cell(9, "TAX", "", ","),
     "line 9, column TAX: empty cell"),
    ("blank lines keep physical line numbers", HOUSING_DATA,
     lambda ls: ["", "  "] + _edit_cell(3, "AGE", "x", "")(ls),
     "line 5, column AGE: 'x' is not a number"),
    ("empty file", HOUSING_CSV, lambda ls: [], "empty file"),
    ("blank file", HOUSING_DATA, lambda ls: ["", "   ", ""], "empty file"),
    ("header only", HOUSING_CSV, lambda ls: ls[:1] + [""], "no data rows after the header"),
]


@pytest.mark.parametrize("source, edit, expected", [c[1:] for c in HOUSING_CORRUPTIONS],
                         ids=[c[0] for c in HOUSING_CORRUPTIONS])
def test_corrupt_housing_file_is_a_data_error(tmp_path, source, edit, expected):
    path = tmp_path / source.name
    path.write_text("\n".join(edit(source.read_text().splitlines())) + "\n")
    with pytest.raises(DataError) as info:
        load_housing(path)
    assert str(info.value).startswith(f"{path}: {expected}")


def test_csv_in_another_column_order_gives_the_same_arrays(tmp_path):
    canonical = load_housing(HOUSING_DATA)
    rows = [line.split(",") for line in HOUSING_CSV.read_text().splitlines()]
    order = np.random.default_rng(3).permutation(14)
    path = tmp_path / "shuffled.csv"
    # also: CRLF line endings, spaces around cells, a blank line in the middle, no final newline
    lines = [",".join(f" {row[j]} " for j in order) for row in rows]
    path.write_bytes("\r\n".join(lines[:100] + [""] + lines[100:]).encode())
    shuffled = load_housing(path)
    np.testing.assert_array_equal(shuffled.X, canonical.X)
    np.testing.assert_array_equal(shuffled.y, canonical.y)


def test_housing_accepts_scientific_notation_in_the_first_row(tmp_path):
    path = tmp_path / "housing.data"
    lines = HOUSING_DATA.read_text().splitlines()
    path.write_text("\n".join(["6.32E-3" + lines[0][len("0.00632"):], *lines[1:]]))
    np.testing.assert_array_equal(load_housing(path).X, load_housing(HOUSING_DATA).X)


def test_missing_housing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="nothere.csv: cannot read"):
        load_housing(tmp_path / "nothere.csv")


# ----------------------------------------------------------------------------------------------
# splits
# ----------------------------------------------------------------------------------------------


def _check_partition(split, n: int) -> None:
    parts = [split.train, split.val, split.test]
    for part in parts:
        assert part.dtype == np.int64 and np.all(np.diff(part) > 0)
    union = np.concatenate(parts)
    assert union.size == n and np.array_equal(np.sort(union), np.arange(n))


def test_housing_split_follows_the_file_order_protocol():
    split = housing_split(506)
    _check_partition(split, 506)
    np.testing.assert_array_equal(split.test, np.arange(404, 506))
    assert split.val.size == 61 and split.train.size == 343 and split.val.max() < 404
    assert split.val.max() - split.val.min() > 200  # a random slice, not a block
    assert housing_split(506, val_fraction=0.0).val.size == 0


def test_random_split_sizes_and_partition():
    split = random_split(10000, test_fraction=0.1, val_fraction=0.15, seed=1)
    _check_partition(split, 10000)
    assert (split.test.size, split.val.size, split.train.size) == (1000, 1500, 7500)
    only_val = random_split(7, 0.0, 0.1, seed=0)
    assert (only_val.test.size, only_val.val.size, only_val.train.size) == (0, 1, 6)
    _check_partition(only_val, 7)


@pytest.mark.parametrize("make", [lambda s: housing_split(506, 0.2, seed=s),
                                  lambda s: random_split(1000, 0.2, 0.1, seed=s)],
                         ids=["housing_split", "random_split"])
def test_splits_are_seeded(make):
    a, b, c = make(7), make(7), make(8)
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.val, c.val)


@pytest.mark.parametrize("call", [lambda: housing_split(2), lambda: random_split(2, 0.5, 0.5, 0),
                                  lambda: random_split(100, 1.0, 0.0, 0),
                                  lambda: housing_split(506, val_fraction=-0.1)])
def test_impossible_splits_are_refused(call):
    with pytest.raises(ValueError):
        call()
