"""The batch scorer on pictures: a folder or a zip of picture files, labels from the folder
names or a labels CSV (accuracy printed), unusable files reported by name."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import orjson
import pytest

from model.digit_image import normalize_digit
from service.imaging import decode_image
from tests.factories import digit_png
from tests.service.batch.test_batch import artifacts, read_output, reference, score

__all__ = ["artifacts"]  # the module-scoped fixture, shared


def picture_folder(root: Path, n: int) -> tuple[list[bytes], list[int]]:
    """n digit pictures in root/<label>/, in sorted path order, and their labels."""
    files, labels = [], []
    for i in range(n):
        label = i % 3
        data = digit_png(seed=i, fmt="PNG" if i % 2 else "JPEG")
        name = root / str(label) / f"{i:02d}.{'png' if i % 2 else 'jpg'}"
        name.parent.mkdir(parents=True, exist_ok=True)
        name.write_bytes(data)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        files.append(path.read_bytes())
        labels.append(int(path.parent.name))
    return files, labels


def seen(files: list[bytes]) -> np.ndarray:
    return np.stack([normalize_digit(decode_image(f)) for f in files])


@pytest.mark.parametrize("zipped", [False, True])
def test_folder_or_zip_with_folder_labels(capsys, artifacts, tmp_path, zipped):
    folder = tmp_path / "digits"
    files, labels = picture_folder(folder, 7)
    src = folder
    if zipped:
        src = tmp_path / "digits.zip"
        with zipfile.ZipFile(src, "w") as z:
            for path in sorted(folder.rglob("*")):
                z.write(path, path.relative_to(folder).as_posix())
    code, stdout, err = score(capsys, artifacts, "--model", "mnist", "--input", src,
                              "--output", tmp_path / "out.csv", "--chunk-size", "3")
    assert code == 0, err
    rows, probs, predicted = read_output(tmp_path / "out.csv")
    expected = reference(artifacts, "mnist", seen(files))
    assert rows == list(range(7))
    np.testing.assert_array_equal(probs, expected)
    assert orjson.loads(stdout) == {
        "accuracy": float(np.mean(expected.argmax(1) == np.array(labels))), "n": 7}


def test_labels_csv_and_bad_files(capsys, artifacts, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "a.png").write_bytes(digit_png(seed=1))
    (folder / "b.png").write_bytes(b"not a picture")
    (folder / "c.png").write_bytes(digit_png(seed=2)[:60])
    (folder / "d.bmp").write_bytes(digit_png(seed=3, fmt="BMP"))
    (folder / "notes.txt").write_text("not a picture file name: skipped")
    (folder / "labels.csv").write_text("file,label\na.png,4\nd.bmp,9\n")
    code, stdout, err = score(capsys, artifacts, "--model", "mnist", "--input", folder,
                              "--output", tmp_path / "out.jsonl")
    assert code == 2, err
    rows, probs, _ = read_output(tmp_path / "out.jsonl")
    assert rows == [0, 3]
    report = [orjson.loads(line) for line in
              (tmp_path / "out.jsonl.errors.jsonl").read_text().splitlines()]
    assert [r["row"] for r in report] == [1, 2]
    assert "b.png: not a picture" in report[0]["error"]
    assert "c.png" in report[1]["error"] and "truncated" in report[1]["error"]
    expected = reference(artifacts, "mnist", seen([digit_png(seed=1),
                                                   digit_png(seed=3, fmt="BMP")]))
    assert orjson.loads(stdout) == {
        "accuracy": float(np.mean(expected.argmax(1) == np.array([4, 9]))), "n": 2}


def test_unusable_picture_inputs(capsys, artifacts, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = score(capsys, artifacts, "--model", "mnist", "--input", empty,
                         "--output", tmp_path / "o.csv")
    assert code == 2 and "no picture files" in err
    (empty / "x.png").write_bytes(digit_png())
    code, _, err = score(capsys, artifacts, "--model", "housing", "--input", empty,
                         "--output", tmp_path / "o.csv")
    assert code == 2 and "does not take pictures" in err
    (tmp_path / "broken.zip").write_bytes(b"PK not really")
    code, _, err = score(capsys, artifacts, "--model", "mnist", "--input",
                         tmp_path / "broken.zip", "--output", tmp_path / "o.csv")
    assert code == 2 and "not a readable zip" in err

