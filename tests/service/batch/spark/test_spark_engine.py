"""``--engine spark`` on a real Spark session (local[2]): the same outputs, metrics, error
report and exit codes as the local engine on the same inputs."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.batch.cli import main
from tests.factories import HOUSING_FEATURES, random_housing, random_images

pytestmark = pytest.mark.usefixtures("spark")


def run(capsys, artifacts: Path, engine: str, *args: str | Path) -> tuple[int, str, str]:
    extra = ["--engine", "spark", "--master", "local[2]"] if engine == "spark" else []
    code = main(["--artifacts", str(artifacts), "--no-progress", *extra, *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def both(capsys, artifacts: Path, tmp_path: Path, model: str, source: Path, ext: str,
         *spark_args: str) -> dict[str, tuple[int, str, str, Path]]:
    """Each engine's (exit code, stdout, stderr, output path) on the same input."""
    results = {}
    for engine in ("local", "spark"):
        output = tmp_path / f"{engine}{ext}"
        extra = spark_args if engine == "spark" else ()
        results[engine] = (*run(capsys, artifacts, engine, "--model", model, "--input", source,
                                "--output", output, *extra), output)
    return results


def table(path: Path) -> dict[str, list]:
    """A Parquet file or dataset folder, or a CSV file or folder of part files."""
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pydict()
    parts = sorted(path.glob("part-*.csv")) if path.is_dir() else [path]
    rows: list[list[str]] = []
    header: list[str] = []
    for part in parts:
        with open(part, newline="") as f:
            header, *body = list(csv.reader(f))
        rows += body
    return {name: [float(r[j]) for r in rows] for j, name in enumerate(header)}


def error_records(output: Path) -> list[dict]:
    report = output.with_name(output.name + ".errors.jsonl")
    files = sorted(report.glob("part-*")) if report.is_dir() else [report]
    return [orjson.loads(line) for f in files for line in f.read_bytes().splitlines()]


def assert_same(local: dict[str, list], spark: dict[str, list]) -> None:
    assert list(local) == list(spark)
    for name in local:
        np.testing.assert_allclose(np.asarray(spark[name], np.float64),
                                   np.asarray(local[name], np.float64), rtol=1e-5, atol=1e-6,
                                   err_msg=name)


@pytest.mark.parametrize("io", ["workers", "spark"])
def test_housing_parquet_bad_rows_and_partitions(capsys, spark, spark_artifacts, tmp_path, io):
    """Several partitions (workers: row groups split in ranges) of one file, numbered in
    file order; bad cells of each kind."""
    x, y = random_housing(6000, seed=11), np.linspace(5, 50, 6000)
    columns = {name: x[:, j] for j, name in enumerate(HOUSING_FEATURES)}
    crim = [repr(float(v)) for v in x[:, 0]]
    crim[10], crim[4321] = "abc", None
    columns["CRIM"] = pa.array(crim)  # text: parsed as the CSV reader parses cells
    rm = x[:, 5].copy()
    rm[2500] = np.nan
    columns["RM"], columns["MEDV"] = rm, y
    pq.write_table(pa.table(columns), tmp_path / "h.parquet", row_group_size=500)
    spark.conf.set("spark.sql.files.maxPartitionBytes", "65536")
    try:
        assert spark.read.parquet(str(tmp_path / "h.parquet")).rdd.getNumPartitions() > 1
        results = both(capsys, spark_artifacts, tmp_path, "housing", tmp_path / "h.parquet",
                       ".parquet", "--io", io)
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    (lcode, lout, lerr, lpath), (scode, sout, serr, spath) = results.values()
    assert (lcode, scode) == (2, 2), serr
    assert "error: 3 of 6000 rows could not be scored" in serr
    local, spark_out = table(lpath), table(spath)
    assert spark_out["row"] == local["row"] == [r for r in range(6000)
                                                if r not in (10, 2500, 4321)]
    assert_same(local, spark_out)
    assert error_records(spath) == error_records(lpath)
    assert [e["row"] for e in error_records(spath)] == [10, 2500, 4321]
    lm, sm = orjson.loads(lout), orjson.loads(sout)
    assert sm["n"] == lm["n"] == 5997
    assert sm["rmse"] == pytest.approx(lm["rmse"], rel=1e-12)
    assert sm["mae"] == pytest.approx(lm["mae"], rel=1e-12)
    assert "on Spark (local[2])" in serr
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_digits_csv_and_list_column(capsys, spark_artifacts, tmp_path):
    images = random_images(60, seed=12).reshape(60, 784)
    labels = np.arange(60) % 10
    with open(tmp_path / "d.csv", "w") as f:
        f.write(",".join(["label", *(f"pixel{i}" for i in range(784))]) + "\n")
        for i, (lab, row) in enumerate(zip(labels, images, strict=True)):
            cells = [str(lab), *map(str, row)]
            if i == 7:
                cells[300] = "x"
            f.write(",".join(cells) + "\n")
    results = both(capsys, spark_artifacts, tmp_path, "mnist", tmp_path / "d.csv", ".csv")
    (lcode, lout, _, lpath), (scode, sout, serr, spath) = results.values()
    assert (lcode, scode) == (2, 2), serr
    assert spath.is_dir() and table(spath)["row"] == [r for r in range(60) if r != 7]
    assert_same(table(lpath), table(spath))
    # the CSV reader knows lines; Spark does not: the rest of the report is the same
    assert [{k: v for k, v in e.items() if k != "line"} for e in error_records(lpath)] == \
        error_records(spath) == [{"row": 7, "error": "column pixel299: 'x' is not a number"}]
    assert orjson.loads(sout) == orjson.loads(lout)

    lists = pa.table({"image": pa.array(list(images), pa.list_(pa.uint8())), "label": labels})
    pq.write_table(lists, tmp_path / "d.parquet")
    results = both(capsys, spark_artifacts, tmp_path / "", "mnist", tmp_path / "d.parquet",
                   ".parquet")
    (lcode, lout, _, lpath), (scode, sout, serr, spath) = results.values()
    assert (lcode, scode) == (0, 0), serr
    assert_same(table(lpath), table(spath))
    assert orjson.loads(sout) == orjson.loads(lout)
    assert not spath.with_name("spark.parquet.errors.jsonl").exists()

    # --probabilities list: one list<float> column in both engines, the same numbers
    for engine in ("local", "spark"):
        code, _, err = run(capsys, spark_artifacts, engine, "--model", "mnist", "--input",
                           tmp_path / "d.parquet", "--output", tmp_path / f"{engine}-list.parquet",
                           "--probabilities", "list")
        assert code == 0, err
    llist, slist = (pq.read_table(tmp_path / f"{e}-list.parquet") for e in ("local", "spark"))
    assert slist.schema.names == llist.schema.names == ["row", "label", "probabilities"]
    assert slist.schema.field("probabilities").type == pa.list_(pa.float32())
    assert slist["row"].to_pylist() == llist["row"].to_pylist() == list(range(60))
    assert slist["label"].to_pylist() == llist["label"].to_pylist()
    np.testing.assert_allclose(np.array(slist["probabilities"].to_pylist()),
                               np.array(llist["probabilities"].to_pylist()), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.array(llist["probabilities"].to_pylist(), np.float32),
                                  np.array([table(lpath)[f"p{i}"] for i in range(10)],
                                           np.float32).T)


@pytest.mark.parametrize("io", ["workers", "spark"])
def test_id_column_keys_the_output_and_the_errors(capsys, spark_artifacts, tmp_path, io):
    x = random_housing(20, seed=13)
    ids = [f"house-{i:03d}" for i in range(20)]
    columns = {"house": ids, **{name: x[:, j] for j, name in enumerate(HOUSING_FEATURES)}}
    columns["TAX"] = [None if i == 4 else v for i, v in enumerate(x[:, 9].tolist())]
    pq.write_table(pa.table(columns), tmp_path / "h.parquet")
    code, out, err = run(capsys, spark_artifacts, "spark", "--model", "housing", "--input",
                         tmp_path / "h.parquet", "--output", tmp_path / "p.parquet",
                         "--id-column", "house", "--io", io)
    assert code == 2 and out == "", err
    result = table(tmp_path / "p.parquet")
    assert list(result) == ["house", "prediction"]
    assert result["house"] == [k for i, k in enumerate(ids) if i != 4]
    assert error_records(tmp_path / "p.parquet") == [{"house": "house-004",
                                                      "error": "column TAX: null"}]


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "housing", "--input", "{tmp}/nothing.parquet"], "no such file or folder"),
    (["--model", "nope", "--input", "{tmp}/h.parquet"], "model 'nope' not found"),
    (["--model", "mnist", "--input", "{tmp}/h.parquet"], "expected 784 pixel columns"),
    (["--model", "housing", "--input", "{tmp}/h.parquet", "--id-column", "key"],
     "no column 'key' (--id-column)"),
    (["--model", "housing", "--input", "{tmp}/h.parquet", "--url", "http://x"],
     "--url is not for --engine spark"),
])
def test_unusable_runs_stop_with_exit_2_and_write_nothing(capsys, spark_artifacts, tmp_path,
                                                          args, message):
    pq.write_table(pa.table({n: [1.0] for n in HOUSING_FEATURES}), tmp_path / "h.parquet")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, out, err = run(capsys, spark_artifacts, "spark", *args, "--output",
                         tmp_path / "p.parquet")
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.parquet"]


@pytest.mark.parametrize("io", ["workers", "spark"])
def test_a_job_that_fails_midway_leaves_nothing(capsys, spark_artifacts, tmp_path,
                                               monkeypatch, io):
    """The workers check the artifact's sha256 as they load it: weights changed on the way
    fail the job (exit 1, one line) and nothing is written."""
    from service.batch.spark import job

    ship = job.ship

    def ship_tampered(sc, model):
        copy = tmp_path / "shipped"
        shutil.copytree(model.path, copy)
        weights = bytearray((copy / "weights.npz").read_bytes())
        weights[-30] ^= 0xFF
        (copy / "weights.npz").write_bytes(bytes(weights))
        model.path = copy
        return ship(sc, model)

    monkeypatch.setattr(job, "ship", ship_tampered)
    x = random_housing(300, seed=14)
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({n: x[:, j] for j, n in enumerate(HOUSING_FEATURES)}),
                   tmp_path / "in" / "h.parquet")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "p.parquet").mkdir()  # an earlier run's output stays as it was
    code, out, err = run(capsys, spark_artifacts, "spark", "--model", "housing", "--input",
                         tmp_path / "in" / "h.parquet", "--output", tmp_path / "out" / "p.parquet",
                         "--io", io)
    assert code == 1 and "the Spark job failed" in err and "checksum mismatch" in err, err
    assert err.count("\n") == 1 and out == ""
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["p.parquet"]
    assert not any((tmp_path / "out" / "p.parquet").iterdir())
