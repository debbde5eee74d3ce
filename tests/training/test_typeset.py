"""``python -m training.typeset``: typeset training digits from the machine's fonts, and the
committed ``data/typeset-digits`` folder it wrote."""

import hashlib
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from model.idx import idx_bytes, read_idx
from training.datasets import load_digits
from training.typeset import (
    IMAGES_FILE,
    LABELS_FILE,
    README_FILE,
    TRAIN_FAMILIES,
    find_fonts,
    is_training_font,
    main,
)

COMMITTED = ROOT / "data" / "typeset-digits"


def test_the_committed_folder_is_what_its_readme_says():
    data = load_digits(COMMITTED)
    assert data.test_images is None
    assert data.train_images.shape == (2190, 28, 28)
    assert np.bincount(data.train_labels, minlength=10).tolist() == [219] * 10
    readme = (COMMITTED / README_FILE).read_text()
    for name in (IMAGES_FILE, LABELS_FILE):
        digest = hashlib.sha256((COMMITTED / name).read_bytes()).hexdigest()
        assert f"| `{name}` | `{digest}` |" in readme
    assert "python -m training.typeset --out data/typeset-digits" in readme
    assert "licence" in readme.lower() and "fonts-urw-base35" in readme
    # MNIST-like: white ink on black, centred by mass in the 28x28 frame
    mean = data.train_images.astype(np.float64).mean(0)
    rows, cols = np.indices(mean.shape)
    centre = (rows * mean).sum() / mean.sum(), (cols * mean).sum() / mean.sum()
    assert np.allclose(centre, 13.5, atol=1.0)
    assert data.train_images[:, :2].max() < 64  # MNIST's 4-pixel margin, 20x20 box


def test_only_training_families_are_rendered():
    fonts = find_fonts()
    training = [n for n in fonts if is_training_font(n)]
    held_out = [n for n in fonts if not is_training_font(n)]
    assert training and all(n.startswith(TRAIN_FAMILIES) for n in training)
    readme = (COMMITTED / README_FILE).read_text()
    listed = re.findall(r"^\| ([^|`]+?) \| `/", readme, re.MULTILINE)
    assert listed and all(is_training_font(n) for n in listed)
    assert not set(held_out) & set(listed)


def test_writes_a_readable_set_the_same_way_twice(tmp_path, capsys):
    for out in (tmp_path / "a", tmp_path / "b"):
        assert main(["--out", str(out), "--per-digit-font", "1"]) == 0
    printed = capsys.readouterr().out
    assert "typeset digits from" in printed and str(tmp_path / "a") in printed
    fonts = sum(is_training_font(n) for n in find_fonts())
    data = load_digits(tmp_path / "a")
    assert len(data.train_labels) == 10 * fonts
    assert np.bincount(data.train_labels).tolist() == [fonts] * 10
    for name in (IMAGES_FILE, LABELS_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temporary left


def test_replaces_an_earlier_set_but_never_a_folder_with_other_files(tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["--out", str(out), "--per-digit-font", "1", "--seed", "5"]) == 0
    first = read_idx(out / IMAGES_FILE)
    assert main(["--out", str(out), "--per-digit-font", "1", "--seed", "6"]) == 0
    assert not np.array_equal(read_idx(out / IMAGES_FILE), first)
    (out / "notes.txt").write_text("mine")
    before = (out / IMAGES_FILE).read_bytes()
    capsys.readouterr()
    assert main(["--out", str(out), "--per-digit-font", "1"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "notes.txt" in err and "refusing to replace" in err
    assert (out / IMAGES_FILE).read_bytes() == before and (out / "notes.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_help_and_bad_arguments_as_a_real_process(tmp_path):
    out = subprocess.run([sys.executable, "-m", "training.typeset", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--per-digit-font" in out.stdout
    assert "--extra-data" in out.stdout and "atomically" in out.stdout
    out = subprocess.run([sys.executable, "-m", "training.typeset", "--out", str(tmp_path),
                          "--per-digit-font", "0"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "must be at least 1" in out.stderr


@pytest.mark.parametrize("array", [np.zeros((0,), np.uint8),
                                   np.arange(24, dtype=np.uint8).reshape(2, 3, 4)])
def test_idx_bytes_round_trips_and_is_reproducible(tmp_path, array):
    path = tmp_path / "a.gz"
    path.write_bytes(idx_bytes(array))
    back = read_idx(path)
    assert back.dtype == np.uint8 and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert idx_bytes(array) == idx_bytes(array.copy())  # no time stamp in the gzip header
    raw = tmp_path / "a"
    raw.write_bytes(idx_bytes(array, compress=False))
    np.testing.assert_array_equal(read_idx(raw), array)
    with pytest.raises(ValueError, match="uint8"):
        idx_bytes(array.astype(np.float32))
