"""The batch scorer in local mode, on real files: formats, bad rows, bad files, atomicity,
chunking, bounded memory, and the command line as a real subprocess."""

from __future__ import annotations

import csv
import gzip
import os
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import orjson
import pytest
from threadpoolctl import threadpool_limits

from model import Predictor
from service.batch.cli import main
from service.batch.inputs import CsvSource, IdxSource
from service.core.registry import Registry
from tests.factories import (
    HOUSING_FEATURES,
    make_classifier,
    make_regressor,
    random_housing,
    random_images,
)

ROOT = Path(__file__).resolve().parents[3]


# -- helpers ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    """housing/1 (regressor), mnist/1 (MLP), digits/1 (CNN)."""
    root = tmp_path_factory.mktemp("batch") / "artifacts"
    make_regressor(root)
    make_classifier(root)
    make_classifier(root, name="digits", arch="cnn")
    return root


def reference(artifacts: Path, name: str, x: np.ndarray) -> np.ndarray:
    """The Predictor's outputs for x, with the service's one BLAS thread."""
    with threadpool_limits(1):
        return Predictor.from_artifact(artifacts / name / "1").predict(x)


def score(capsys, artifacts: Path, *args: str | Path) -> tuple[int, str, str]:
    code = main(["--artifacts", str(artifacts), "--no-progress", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def read_output(path: Path) -> tuple[list[int], np.ndarray, list[int] | None]:
    """(row numbers, float32 predictions or probabilities, labels or None) of an output."""
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            table = list(csv.reader(f))
        header, body = table[0], table[1:]
        rows = [int(r[0]) for r in body]
        if header[1] == "label":
            assert header[2:] == [f"p{i}" for i in range(10)]
            return rows, np.array([r[2:] for r in body], np.float32).reshape(-1, 10), \
                [int(r[1]) for r in body]
        assert header == ["row", "prediction"]
        return rows, np.array([r[1] for r in body], np.float32), None
    records = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    rows = [r["row"] for r in records]
    if records and "probabilities" in records[0]:
        return rows, np.array([r["probabilities"] for r in records], np.float32).reshape(-1, 10), \
            [r["label"] for r in records]
    return rows, np.array([r["prediction"] for r in records], np.float32), None


def read_errors(output: Path) -> list[dict]:
    report = output.with_name(output.name + ".errors.jsonl")
    return [orjson.loads(line) for line in report.read_bytes().splitlines()]


def housing_csv(path: Path, x: np.ndarray, columns: list[str], target: np.ndarray | None = None,
                ) -> Path:
    with open(path, "w") as f:
        f.write(",".join(columns) + "\n")
        for i, row in enumerate(x):
            values = dict(zip(HOUSING_FEATURES, row, strict=True))
            if target is not None:
                values["MEDV"] = target[i]
            f.write(",".join(repr(float(values[c])) for c in columns) + "\n")
    return path


def idx_file(path: Path, array: np.ndarray, compress: bool) -> Path:
    data = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) \
        + np.ascontiguousarray(array, np.uint8).tobytes()
    path.write_bytes(gzip.compress(data, compresslevel=1) if compress else data)
    return path


def with_cell(line: str, column: int, text: str) -> str:
    cells = line.split(",")
    cells[column] = text
    return ",".join(cells)


def no_leftovers(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# -- each input format, both output formats -----------------------------------------------------
@pytest.mark.parametrize("out", ["out.csv", "out.jsonl"])
@pytest.mark.parametrize("with_target", [True, False])
def test_housing_csv_in_any_column_order(capsys, artifacts, tmp_path, out, with_target):
    x = random_housing(37, seed=1)
    y = np.linspace(10, 40, 37)
    columns = list(reversed(HOUSING_FEATURES)) + (["MEDV"] if with_target else [])
    columns.insert(3, columns.pop())  # the target (or a feature) somewhere in the middle
    src = housing_csv(tmp_path / "houses.csv", x, columns, y if with_target else None)
    code, stdout, err = score(capsys, artifacts, "--model", "housing", "--input", src,
                              "--output", tmp_path / out)
    assert code == 0, err
    rows, values, _ = read_output(tmp_path / out)
    assert rows == list(range(37))
    expected = reference(artifacts, "housing", x)
    np.testing.assert_array_equal(values, expected)
    assert not (tmp_path / f"{out}.errors.jsonl").exists() and no_leftovers(tmp_path)
    assert "scored 37 of 37 rows with housing version 1 locally" in err
    if with_target:
        metrics = orjson.loads(stdout)
        err64 = expected.astype(np.float64) - y
        assert metrics["n"] == 37
        assert metrics["rmse"] == pytest.approx(np.sqrt(np.mean(err64 ** 2)))
        assert metrics["mae"] == pytest.approx(np.mean(np.abs(err64)))
    else:
        assert stdout == ""


@pytest.mark.parametrize("names", ["plain", "pixelN", "RxC"])
def test_mnist_csv_with_labels(capsys, artifacts, tmp_path, names):
    images = random_images(25, seed=2)
    labels = np.arange(25) % 10
    flat = images.reshape(25, 784)
    columns = {"plain": [f"c{i}" for i in range(784)],
               "pixelN": [f"pixel{i}" for i in range(784)],
               "RxC": [f"{i // 28 + 1}x{i % 28 + 1}" for i in range(784)]}[names]
    order = np.arange(784)
    if names != "plain":  # named pixels may come in any order
        order = np.random.default_rng(0).permutation(784)
    with open(tmp_path / "digits.csv", "w") as f:
        f.write(",".join(["label"] + [columns[j] for j in order]) + "\n")
        for lab, row in zip(labels, flat, strict=True):
            f.write(",".join([str(lab)] + [str(v) for v in row[order]]) + "\n")
    code, stdout, err = score(capsys, artifacts, "--model", "mnist", "--input",
                              tmp_path / "digits.csv", "--output", tmp_path / "p.csv")
    assert code == 0, err
    rows, probs, predicted = read_output(tmp_path / "p.csv")
    expected = reference(artifacts, "mnist", images)
    assert rows == list(range(25))
    np.testing.assert_array_equal(probs, expected)
    assert predicted == expected.argmax(axis=1).tolist()
    assert orjson.loads(stdout) == {"accuracy": float(np.mean(expected.argmax(1) == labels)),
                                    "n": 25}


@pytest.mark.parametrize("out", ["out.csv", "out.jsonl"])
def test_jsonl_in_every_instance_shape(capsys, artifacts, tmp_path, out):
    x = random_housing(6, seed=3)
    lines = [orjson.dumps(dict(zip(HOUSING_FEATURES, x[0].tolist(), strict=True))),  # named object
             orjson.dumps(x[1].tolist()),                                       # list
             orjson.dumps({"instance": x[2].tolist(), "label": 30.0}),          # wrapped
             b"",                                                               # blank: skipped
             orjson.dumps({**dict(zip(HOUSING_FEATURES, x[3].tolist(), strict=True)), "MEDV": 20}),
             orjson.dumps({"instance": dict(zip(HOUSING_FEATURES, x[4].tolist(), strict=True))}),
             b"  " + orjson.dumps(x[5].tolist()) + b"  "]
    (tmp_path / "h.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    code, stdout, err = score(capsys, artifacts, "--model", "housing", "--input",
                              tmp_path / "h.jsonl", "--output", tmp_path / out)
    assert code == 0, err
    rows, values, _ = read_output(tmp_path / out)
    assert rows == list(range(6))
    expected = reference(artifacts, "housing", x)
    np.testing.assert_array_equal(values, expected)
    metrics = orjson.loads(stdout)
    assert metrics["n"] == 2 and metrics["mae"] == pytest.approx(
        (abs(expected[2] - 30.0) + abs(expected[3] - 20.0)) / 2)
    assert "2 scored rows have no usable true value" not in err  # 4 have none: said as 4
    assert "4 scored rows have no usable true value" in err

    images = random_images(4, seed=4)
    digits = [orjson.dumps(images[0].tolist()),                        # 28 x 28
              orjson.dumps(images[1].ravel().tolist()),                # 784 flat
              orjson.dumps({"instance": images[2].tolist(), "label": 3}),
              orjson.dumps({"instance": images[3].ravel().tolist(), "label": 9})]
    (tmp_path / "d.ndjson").write_bytes(b"\n".join(digits))  # no final newline
    code, stdout, err = score(capsys, artifacts, "--model", "digits", "--input",
                              tmp_path / "d.ndjson", "--output", tmp_path / out)
    assert code == 0, err
    rows, probs, _ = read_output(tmp_path / out)
    expected = reference(artifacts, "digits", images)
    np.testing.assert_array_equal(probs, expected)
    assert orjson.loads(stdout)["n"] == 2


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("out", ["out.csv", "out.jsonl"])
def test_idx_with_sibling_labels(capsys, artifacts, tmp_path, compress, out):
    images = random_images(30, seed=5)
    labels = (np.arange(30) * 7 % 10).astype(np.uint8)
    gz = ".gz" if compress else ""
    src = idx_file(tmp_path / f"t10k-images-idx3-ubyte{gz}", images, compress)
    idx_file(tmp_path / f"t10k-labels-idx1-ubyte{gz}", labels, compress)
    code, stdout, err = score(capsys, artifacts, "--model", "digits", "--input", src,
                              "--output", tmp_path / out, "--chunk-size", "7")
    assert code == 0, err
    rows, probs, predicted = read_output(tmp_path / out)
    expected = reference(artifacts, "digits", images)
    assert rows == list(range(30))
    np.testing.assert_array_equal(probs, expected)
    assert orjson.loads(stdout) == {"accuracy": float(np.mean(expected.argmax(1) == labels)),
                                    "n": 30}


def test_idx_labels_option_and_format_override(capsys, artifacts, tmp_path):
    images = random_images(5, seed=6)
    src = idx_file(tmp_path / "pictures.bin", images, compress=True)
    lab = idx_file(tmp_path / "truth.bin", np.array([1, 2, 3, 4, 5], np.uint8), compress=False)
    code, stdout, err = score(capsys, artifacts, "--model", "mnist", "--input", src,
                              "--labels", lab, "--output", tmp_path / "o.jsonl")
    assert code == 0, err  # recognised as IDX by its (gzipped) magic bytes
    assert orjson.loads(stdout)["n"] == 5
    (tmp_path / "rows.txt").write_text(",".join(HOUSING_FEATURES) + "\n" + "1," * 12 + "1\n")
    code, _, err = score(capsys, artifacts, "--model", "housing", "--input",
                         tmp_path / "rows.txt", "--format", "csv", "--output",
                         tmp_path / "o.csv")
    assert code == 0, err


# -- bad rows: reported, the others scored ----------------------------------------------------
def test_bad_csv_rows_are_reported_with_row_and_line(capsys, artifacts, tmp_path):
    x = random_housing(8, seed=7)
    good = [",".join(map(repr, r.tolist())) for r in x]
    lines = [",".join(HOUSING_FEATURES), good[0], "", good[1],
             with_cell(good[2], 5, "nan"),            # row 2, line 5: NaN RM
             with_cell(good[3], 1, "abc"),            # row 3: not a number
             "   ",                                   # blank (spaces): not a record
             ",".join(good[4].split(",")[:12]),       # row 4: 12 fields
             good[5],
             with_cell(good[6], 12, "1e999"),         # row 6: inf
             with_cell(good[7], 0, "")]               # row 7: empty cell
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    code, _, err = score(capsys, artifacts, "--model", "housing", "--input",
                         tmp_path / "in.csv", "--output", tmp_path / "o.csv",
                         "--chunk-size", "3")
    assert code == 2
    assert "5 of 8 rows could not be scored" in err and "o.csv.errors.jsonl" in err
    rows, values, _ = read_output(tmp_path / "o.csv")
    assert rows == [0, 1, 5]
    np.testing.assert_array_equal(values, reference(artifacts, "housing", x[[0, 1, 5]]))
    errors = read_errors(tmp_path / "o.csv")
    assert [(e["row"], e["line"]) for e in errors] == [(2, 5), (3, 6), (4, 8), (6, 10),
                                                       (7, 11)]
    assert errors[0]["details"] == {"RM": ["nan is not allowed: NaN, Infinity and numbers "
                                           "beyond float32 range are not valid inputs."]}
    assert errors[0]["error"].startswith("RM: nan is not allowed")
    assert errors[1]["error"] == "column ZN: 'abc' is not a number"
    assert errors[2]["error"] == "expected 13 comma-separated fields, found 12"
    assert errors[3]["error"].startswith("LSTAT: inf is not allowed")
    assert errors[4]["error"] == "column CRIM: empty cell"


def test_bad_pixels_and_bad_json_lines(capsys, artifacts, tmp_path):
    images = random_images(6, seed=8)
    rows = [img.ravel().tolist() for img in images]
    rows[1][100] = 256                       # out of range
    rows[2][5] = True                        # a boolean, which NumPy would take for 1
    lines = [orjson.dumps(r) for r in rows]
    lines[3] = b'[1, 2, 3'                   # malformed JSON
    lines[4] = orjson.dumps(rows[4][:700])   # wrong length
    lines.insert(5, b'{"instance": [1], "label": 2, "extra": 0}')  # unknown key: row 5
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    code, _, err = score(capsys, artifacts, "--model", "mnist", "--input",
                         tmp_path / "in.jsonl", "--output", tmp_path / "o.jsonl")
    assert code == 2 and "5 of 7 rows could not be scored" in err
    got_rows, probs, _ = read_output(tmp_path / "o.jsonl")
    assert got_rows == [0, 6]
    np.testing.assert_array_equal(probs, reference(artifacts, "mnist", images[[0, 5]]))
    errors = {e["row"]: e for e in read_errors(tmp_path / "o.jsonl")}
    assert sorted(errors) == [1, 2, 3, 4, 5]
    assert errors[1]["error"] == "value 100 is 256, outside the allowed range [0, 255]"
    assert errors[2]["details"] == {"5": ["Not a valid number: booleans are not numbers."]}
    assert errors[3]["error"].startswith("malformed JSON at column") and errors[3]["line"] == 4
    assert errors[4]["error"].startswith("Expected a list of 784 numbers or 28 lists")
    assert "unexpected keys 'extra'" in errors[5]["error"]


def test_a_clean_rerun_removes_the_stale_error_report(capsys, artifacts, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"[1,2]\n" + orjson.dumps([0.5] * 13) + b"\n")
    assert score(capsys, artifacts, "--model", "housing", "--input", src, "--output",
                 tmp_path / "o.csv")[0] == 2
    report = tmp_path / "o.csv.errors.jsonl"
    assert report.exists()
    src.write_bytes(orjson.dumps([0.5] * 13) + b"\n")
    assert score(capsys, artifacts, "--model", "housing", "--input", src, "--output",
                 tmp_path / "o.csv")[0] == 0
    assert not report.exists() and no_leftovers(tmp_path)


# -- bad arguments and unusable files: exit 2, a message, nothing written ---------------------
def _corrupt_idx(tmp: Path) -> Path:
    path = idx_file(tmp / "t10k-images-idx3-ubyte", random_images(3), compress=False)
    path.write_bytes(path.read_bytes()[:-5])
    return path


BAD = [
    ("missing input", "housing", lambda t: t / "absent.csv", ["absent.csv", "no such file"]),
    ("unknown model", "nope", lambda t: t / "ok.csv", ["model 'nope' not found",
                                                       "digits, housing, mnist"]),
    ("empty file", "housing", lambda t: _write(t / "e.csv", ""), ["e.csv", "empty file"]),
    ("header missing features", "housing",
     lambda t: _write(t / "h.csv", "CRIM,ZN,RM\n1,2,3\n"),
     ["h.csv: line 1 (header): missing columns: INDUS", "expected the 13 features"]),
    ("header only", "housing", lambda t: _write(t / "n.csv", ",".join(HOUSING_FEATURES) + "\n"),
     ["n.csv: line 1: no data rows"]),
    ("no header", "housing", lambda t: _write(t / "d.csv", "1," * 12 + "1\n"),
     ["d.csv: line 1 (header)", "needs a header line"]),
    ("corrupt IDX", "mnist", _corrupt_idx,
     ["t10k-images-idx3-ubyte: truncated: header says 3x28x28 = 2352 bytes", "file has 2347"]),
    ("IDX of the wrong shape", "mnist",
     lambda t: idx_file(t / "x-idx3-ubyte", np.zeros((2, 20, 20)), compress=False),
     ["records are 20x20, but the model takes 28x28 values"]),
    ("unknown format", "housing", lambda t: _write(t / "rows.txt", "1\n"),
     ["rows.txt: cannot tell the format", "--format"]),
    ("empty JSON Lines", "housing", lambda t: _write(t / "e.jsonl", "\n\n"),
     ["e.jsonl: no records"]),
    ("labels count", "mnist",
     lambda t: (idx_file(t / "t10k-labels-idx1-ubyte", np.zeros(2), compress=False),
                idx_file(t / "t10k-images-idx3-ubyte", random_images(3), compress=False))[1],
     ["t10k-labels-idx1-ubyte: 2 labels for the 3 records"]),
]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("model, make, fragments", [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_unusable_inputs_exit_2_and_write_nothing(capsys, artifacts, tmp_path, model, make,
                                                  fragments):
    housing_csv(tmp_path / "ok.csv", random_housing(2), HOUSING_FEATURES)
    src = make(tmp_path)
    code, stdout, err = score(capsys, artifacts, "--model", model, "--input", src, "--output",
                              tmp_path / "out.csv")
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err
    assert not (tmp_path / "out.csv").exists() and no_leftovers(tmp_path)


@pytest.mark.parametrize("args, fragment", [
    (["--version", "7"], "model 'housing' has no version '7'; versions: 1"),
    (["--output", "{tmp}/out.txt"], "must end in .csv, .jsonl, .ndjson or .parquet"),
    (["--output", "{tmp}/missing/out.csv"], "does not exist"),
    (["--output", "{tmp}/ok.csv"], "is the input file"),
    (["--artifacts", "{tmp}/none"], "artifacts folder"),
])
def test_bad_arguments_exit_2(capsys, artifacts, tmp_path, args, fragment):
    src = housing_csv(tmp_path / "ok.csv", random_housing(2), HOUSING_FEATURES)
    argv = ["--model", "housing", "--input", str(src), "--output", str(tmp_path / "o.csv")]
    code, _, err = score(capsys, artifacts, *argv, *[a.format(tmp=tmp_path) for a in args])
    assert code == 2 and fragment in err and "Traceback" not in err


def test_a_problem_found_mid_file_leaves_the_old_output_untouched(capsys, artifacts, tmp_path):
    images = random_images(50, seed=9)
    data = gzip.decompress(idx_file(tmp_path / "a", images, compress=True).read_bytes())
    src = tmp_path / "t10k-images-idx3-ubyte.gz"
    src.write_bytes(gzip.compress(data[:-100]))  # truncated: found only at the end
    (tmp_path / "o.csv").write_text("previous run\n")
    code, _, err = score(capsys, artifacts, "--model", "mnist", "--input", src, "--output",
                         tmp_path / "o.csv", "--chunk-size", "8")
    assert code == 2 and "truncated" in err
    assert (tmp_path / "o.csv").read_text() == "previous run\n" and no_leftovers(tmp_path)


# -- chunking and memory --------------------------------------------------------------------
def test_chunk_size_does_not_change_a_byte(capsys, artifacts, tmp_path):
    x = random_housing(40, seed=10)
    src = housing_csv(tmp_path / "in.csv", x, HOUSING_FEATURES)
    text = src.read_text().splitlines()
    text[7] = with_cell(text[7], 2, "x")
    text[20] = with_cell(text[20], 4, "-inf")
    src.write_text("\n".join(text[:30] + [""] + text[30:]) + "\n")
    outputs = []
    for size in ("1", "7", "4096"):
        for workers in ("1", "3"):
            out = tmp_path / f"o{size}-{workers}.jsonl"
            score(capsys, artifacts, "--model", "housing", "--input", src, "--output", out,
                  "--chunk-size", size, "--workers", workers)
            outputs.append((out.read_bytes(), read_errors(out)))
    assert all(o == outputs[0] for o in outputs[1:])
    assert len(outputs[0][1]) == 2


def test_readers_hold_one_chunk_not_the_file(artifacts, tmp_path):
    """Peak memory while reading is the same for a file four times as long, and small."""
    registry = Registry(artifacts, names={"housing", "mnist"})
    registry.refresh()
    housing, mnist = registry.get("housing").interface, registry.get("mnist").interface
    line = ",".join(["1.5"] * 13) + "\n"
    peaks = {}
    for n in (50_000, 200_000):
        src = tmp_path / f"{n}.csv"
        src.write_text(",".join(HOUSING_FEATURES) + "\n" + line * n)  # 200,000: 10 MB
        images = idx_file(tmp_path / f"{n}-idx3-ubyte.gz", np.zeros((n // 10, 28, 28)),
                          compress=True)                           # 20,000: 15 MB of pixels
        for source in (CsvSource(src, housing), IdxSource(images, mnist, None)):
            with source:
                tracemalloc.start()
                seen = 0
                for chunk in source.chunks(500):
                    assert len(chunk.rows) <= 500
                    seen += len(chunk.rows)
                peaks[type(source).__name__, n] = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            assert seen == (n if isinstance(source, CsvSource) else n // 10)
    for kind in ("CsvSource", "IdxSource"):
        small, large = peaks[kind, 50_000], peaks[kind, 200_000]
        assert large < 1.2 * small + 100_000, peaks
        assert large < 2_000_000, peaks


# -- the command line as a real process -----------------------------------------------------
def run_cli(*args: str | Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.batch", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, **kwargs)


def test_cli_help_and_exit_codes_as_a_process(artifacts, tmp_path):
    helped = run_cli("--help")
    assert helped.returncode == 0
    for words in ("exit codes", "JSON Lines", "IDX", "--url", "--chunk-size", "errors.jsonl",
                  "--labels", "counted from 0"):
        assert words in helped.stdout.replace("\n", " ") or words in helped.stdout
    src = housing_csv(tmp_path / "in.csv", random_housing(5), HOUSING_FEATURES)
    ok = run_cli("--model", "housing", "--input", src, "--output", tmp_path / "o.csv",
                 "--artifacts", artifacts)
    assert ok.returncode == 0 and ok.stdout == "" and "scored 5 of 5 rows" in ok.stderr
    assert "Traceback" not in ok.stderr
    bad = run_cli("--model", "housing", "--input", tmp_path / "none.csv", "--output",
                  tmp_path / "o.csv", "--artifacts", artifacts)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "none.csv" in bad.stderr
    usage = run_cli("--model", "housing", "--input", src)
    assert usage.returncode == 2 and "--output" in usage.stderr


def test_sigterm_mid_run_leaves_no_output(artifacts, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text(",".join(HOUSING_FEATURES) + "\n" + (",".join(["2.5"] * 13) + "\n") * 300_000)
    out = tmp_path / "o.csv"
    proc = subprocess.Popen([sys.executable, "-m", "service.batch", "--model", "housing",
                             "--input", str(src), "--output", str(out), "--artifacts",
                             str(artifacts), "--chunk-size", "100", "--workers", "1"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                p.name.startswith(".o.csv.") for p in tmp_path.iterdir()):
            time.sleep(0.02)
        time.sleep(0.2)  # well inside the run
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted: no output written" in err and "Traceback" not in err
    assert not out.exists() and no_leftovers(tmp_path)
