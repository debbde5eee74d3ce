"""Parquet in and out of the local batch scorer: named columns, a list column, bad cells,
bad files, and the same answers as the CSV path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.batch.inputs import ParquetSource
from tests.factories import HOUSING_FEATURES, random_housing, random_images
from tests.service.batch.test_batch import (
    artifacts,  # noqa: F401 - the module's fixture
    no_leftovers,
    read_errors,
    read_output,
    reference,
    score,
)


def housing_table(x: np.ndarray, target: np.ndarray | None = None) -> pa.Table:
    """The 13 features as named float64 columns, reversed (any order is fine), and MEDV."""
    columns = {name: x[:, j] for j, name in reversed(list(enumerate(HOUSING_FEATURES)))}
    if target is not None:
        columns["MEDV"] = target
    return pa.table(columns)


def read_parquet(path: Path) -> dict[str, list]:
    return pq.read_table(path).to_pydict()


def test_housing_parquet_writes_the_csv_answers(capsys, artifacts, tmp_path):  # noqa: F811
    x, y = random_housing(300, seed=5), np.linspace(10, 40, 300)
    pq.write_table(housing_table(x, y), tmp_path / "h.parquet", row_group_size=64)
    code, out, err = score(capsys, artifacts, "--model", "housing", "--input",
                           tmp_path / "h.parquet", "--output", tmp_path / "p.parquet",
                           "--chunk-size", "50")
    assert code == 0, err
    table = pq.read_table(tmp_path / "p.parquet")
    assert table.schema == pa.schema([("row", pa.int64()), ("prediction", pa.float32())])
    expected = reference(artifacts, "housing", x)
    assert table["row"].to_pylist() == list(range(300))
    np.testing.assert_array_equal(table["prediction"].to_numpy(), expected)
    err64 = expected.astype(np.float64) - y
    metrics = orjson.loads(out)
    assert metrics["n"] == 300
    assert metrics["rmse"] == pytest.approx(np.sqrt(np.mean(err64 ** 2)), rel=1e-12)
    # the CSV output of the same input holds the same numbers
    assert score(capsys, artifacts, "--model", "housing", "--input", tmp_path / "h.parquet",
                 "--output", tmp_path / "p.csv")[0] == 0
    rows, values, _ = read_output(tmp_path / "p.csv")
    np.testing.assert_array_equal(values, expected)


@pytest.mark.parametrize("layout", ["list", "fixed_list", "pixels"])
def test_digits_as_a_list_column_or_pixel_columns(capsys, artifacts, tmp_path,  # noqa: F811
                                                  layout):
    images = random_images(40, seed=6)
    flat = images.reshape(40, 784)
    labels = pa.array(np.arange(40) % 10)
    if layout == "pixels":
        table = pa.table({"label": labels, **{f"pixel{i}": flat[:, i] for i in range(784)}})
    else:
        kind = pa.list_(pa.uint8(), 784) if layout == "fixed_list" else pa.list_(pa.uint8())
        table = pa.table({"image": pa.array(list(flat), kind), "label": labels})
    pq.write_table(table, tmp_path / "d.parquet")
    code, out, err = score(capsys, artifacts, "--model", "mnist", "--input",
                           tmp_path / "d.parquet", "--output", tmp_path / "p.parquet")
    assert code == 0, err
    result = read_parquet(tmp_path / "p.parquet")
    assert list(result) == ["row", "label", *(f"p{i}" for i in range(10))]
    expected = reference(artifacts, "mnist", images)
    np.testing.assert_array_equal(np.array([result[f"p{i}"] for i in range(10)]).T, expected)
    assert result["label"] == expected.argmax(1).tolist()
    assert orjson.loads(out) == {"accuracy": float(np.mean(expected.argmax(1) == labels)),
                                 "n": 40}


def test_probabilities_as_one_list_column(capsys, artifacts, tmp_path):  # noqa: F811
    """--probabilities list: row, label, probabilities (list<float32>), the same numbers."""
    images = random_images(30, seed=7)
    pq.write_table(pa.table({"image": pa.array(list(images.reshape(30, 784)),
                                               pa.list_(pa.uint8()))}), tmp_path / "d.parquet")
    code, _, err = score(capsys, artifacts, "--model", "mnist", "--input", tmp_path / "d.parquet",
                         "--output", tmp_path / "p.parquet", "--probabilities", "list")
    assert code == 0, err
    table = pq.read_table(tmp_path / "p.parquet")
    assert table.schema.names == ["row", "label", "probabilities"]
    assert table.schema.field("probabilities").type == pa.list_(pa.float32())
    expected = reference(artifacts, "mnist", images)
    np.testing.assert_array_equal(np.array(table["probabilities"].to_pylist(), np.float32),
                                  expected)
    assert table["label"].to_pylist() == expected.argmax(1).tolist()


@pytest.mark.parametrize(("model", "output", "message"), [
    ("housing", "p.parquet", "--probabilities list is for classifiers"),
    ("mnist", "p.csv", "--probabilities list needs .parquet output"),
])
def test_probabilities_list_where_it_cannot_be(capsys, artifacts, tmp_path, model,  # noqa: F811
                                               output, message):
    pq.write_table(pa.table({"x": [1.0]}), tmp_path / "in.parquet")
    code, _, err = score(capsys, artifacts, "--model", model, "--input", tmp_path / "in.parquet",
                         "--output", tmp_path / output, "--probabilities", "list")
    assert code == 2 and message in err, err
    assert not (tmp_path / output).exists()


def test_bad_cells_go_to_the_error_report(capsys, artifacts, tmp_path):  # noqa: F811
    x = random_housing(8, seed=7)
    table = housing_table(x)
    crim = pa.array(["1.5", "abc", None, "0.25", "2", "3", "4", "5"])
    rm = pa.array([5.0, 6.0, 6.0, None, np.nan, 6.0, 6.0, 6.0])
    table = table.set_column(table.schema.get_field_index("CRIM"), "CRIM", crim)
    table = table.set_column(table.schema.get_field_index("RM"), "RM", rm)
    pq.write_table(table, tmp_path / "h.parquet")
    code, _, err = score(capsys, artifacts, "--model", "housing", "--input",
                         tmp_path / "h.parquet", "--output", tmp_path / "p.parquet")
    assert code == 2
    assert "4 of 8 rows could not be scored" in err
    errors = read_errors(tmp_path / "p.parquet")
    assert [(e["row"], e["error"]) for e in errors[:3]] == [
        (1, "column CRIM: 'abc' is not a number"), (2, "column CRIM: null"),
        (3, "column RM: null")]
    # a NaN is a number: the service's own check and words
    assert errors[3]["row"] == 4 and errors[3]["details"] == {"RM": [
        "nan is not allowed: NaN, Infinity and numbers beyond float32 range are not valid "
        "inputs."]}
    assert read_parquet(tmp_path / "p.parquet")["row"] == [0, 5, 6, 7]


def test_wrong_length_and_null_lists_are_bad_rows(capsys, artifacts, tmp_path):  # noqa: F811
    flat = random_images(4, seed=8).reshape(4, 784).tolist()
    rows = [flat[0], flat[1][:100], None, flat[3]]
    pq.write_table(pa.table({"pixels": pa.array(rows, pa.list_(pa.int32()))}),
                   tmp_path / "d.parquet")
    code, _, err = score(capsys, artifacts, "--model", "mnist", "--input",
                         tmp_path / "d.parquet", "--output", tmp_path / "p.csv")
    assert code == 2, err
    assert [(e["row"], e["error"]) for e in read_errors(tmp_path / "p.csv")] == [
        (1, "column pixels: expected 784 numbers, found 100"), (2, "column pixels: null")]
    rows_out, probs, _ = read_output(tmp_path / "p.csv")
    assert rows_out == [0, 3]
    np.testing.assert_array_equal(probs, reference(
        artifacts, "mnist", np.array([flat[0], flat[3]], np.uint8).reshape(2, 28, 28)))


@pytest.mark.parametrize(("table", "message"), [
    (pa.table({"CRIM": [1.0]}), "missing columns: ZN"),
    (pa.table({**{f: [1.0] for f in HOUSING_FEATURES}, "when": pa.array([1], pa.date32())}),
     "unexpected columns: 'when'"),
    (pa.table({**{f: [1.0] for f in HOUSING_FEATURES[1:]}, "CRIM": pa.array([True])}),
     "columns that cannot hold numbers: CRIM (bool)"),
    (pa.table({f: pa.array([], pa.float64()) for f in HOUSING_FEATURES}), "no rows"),
])
def test_unusable_tables_stop_with_exit_2(capsys, artifacts, tmp_path, table,  # noqa: F811
                                          message):
    pq.write_table(table, tmp_path / "h.parquet")
    code, _, err = score(capsys, artifacts, "--model", "housing", "--input",
                         tmp_path / "h.parquet", "--output", tmp_path / "p.parquet")
    assert code == 2 and message in err, err
    assert err.count("\n") == 1
    assert not (tmp_path / "p.parquet").exists() and no_leftovers(tmp_path)


def test_not_parquet_stops_with_exit_2(capsys, artifacts, tmp_path):  # noqa: F811
    (tmp_path / "h.parquet").write_bytes(b"PAR1 not really")
    code, _, err = score(capsys, artifacts, "--model", "housing", "--input",
                         tmp_path / "h.parquet", "--output", tmp_path / "p.parquet")
    assert code == 2 and "cannot read as Parquet" in err
    assert not (tmp_path / "p.parquet").exists()


def test_reads_batches_not_the_file(artifacts, tmp_path):  # noqa: F811
    """Memory holds one chunk: the reader yields batches of at most the chunk size."""
    pq.write_table(housing_table(random_housing(1000, seed=9)), tmp_path / "h.parquet",
                   row_group_size=300)
    from service.core.registry import load_one

    mv, _ = load_one(artifacts, "housing")
    with ParquetSource(tmp_path / "h.parquet", mv.interface) as source:
        sizes = [len(c.rows) for c in source.chunks(128)]
    assert sum(sizes) == 1000 and max(sizes) <= 128
