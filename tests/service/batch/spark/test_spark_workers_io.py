"""``--io workers``: the Python workers read their slices of the Parquet input and write
their own part files; the answers are the local engine's and Spark's own path's."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.errors import DataError
from service.batch.spark.direct import TASKS_PER_CORE, plan_slices
from tests.factories import HOUSING_FEATURES, make_regressor, random_housing
from tests.service.batch.spark.test_spark_engine import run


def housing_file(path: Path, rows: int, groups: list[int] | int, seed: int,
                 **extra: list) -> np.ndarray:
    x = random_housing(rows, seed=seed)
    table = pa.table({**extra, **{n: x[:, j] for j, n in enumerate(HOUSING_FEATURES)}})
    sizes = [groups] * -(-rows // groups) if isinstance(groups, int) else groups
    with pq.ParquetWriter(path, table.schema) as writer:
        start = 0
        for size in sizes:
            writer.write_table(table.slice(start, size))
            start += size
    return x


@pytest.fixture(scope="module")
def interface(tmp_path_factory):
    from service.batch.scoring import LocalModel

    root = tmp_path_factory.mktemp("plan")
    make_regressor(root)
    return LocalModel.find(root, "housing", None).interface


def test_slices_cover_the_files_in_name_order(interface, tmp_path):
    """Big row groups split in equal ranges, small ones packed, never across files;
    numbered on from file to file in name order."""
    (tmp_path / "in").mkdir()
    housing_file(tmp_path / "in" / "b.parquet", 200, 2, seed=1)      # 100 groups of 2 rows
    housing_file(tmp_path / "in" / "a.parquet", 730, [100, 100, 30, 500], seed=2)
    files = sorted(str(p) for p in (tmp_path / "in").iterdir())
    plan, schema, slices = plan_slices(files, interface, None, cores=1)
    assert plan.inputs == tuple(HOUSING_FEATURES) and schema.names == list(HOUSING_FEATURES)
    share = -(-930 // TASKS_PER_CORE)
    assert all(0 < s.rows <= share for s in slices)
    assert [s.first_row for s in slices] == list(np.cumsum([0] + [s.rows for s in slices])[:-1])
    assert sum(s.rows for s in slices) == 930
    a = [s for s in slices if s.path.endswith("a.parquet")]
    assert slices[:len(a)] == a and a[0].first_row == 0  # a before b
    sizes = [100, 100, 30, 500]
    assert [s.groups for s in a if s.rows == sizes[s.groups[0]]] == [(2,)]  # whole
    for g in (0, 1, 3):  # split in ranges that cover the group
        ranges = [(s.skip, s.rows) for s in a if s.groups == (g,)]
        assert len(ranges) > 1 and ranges[0][0] == 0
        assert all(k + n == k2 for (k, n), (k2, _) in zip(ranges, ranges[1:], strict=False))
        assert sum(n for _, n in ranges) == sizes[g]
    b = slices[len(a):]
    assert all(s.skip == 0 and s.rows == 2 * len(s.groups) for s in b)
    assert max(len(s.groups) for s in b) == share // 2  # packed up to a share
    assert [g for s in b for g in s.groups] == list(range(100))


def test_files_must_share_their_columns(interface, tmp_path):
    housing_file(tmp_path / "a.parquet", 10, 10, seed=3)
    housing_file(tmp_path / "b.parquet", 10, 10, seed=4, key=list(range(10)))
    with pytest.raises(DataError, match="its columns differ from"):
        plan_slices([str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")], interface,
                    None, cores=2)


def read_csv(path: Path) -> list[list[str]]:
    """A CSV file, or a folder's part files (each with the header) as one."""
    rows: list[list[str]] = []
    header: list[str] = []
    for part in sorted(path.glob("part-*.csv")) if path.is_dir() else [path]:
        with open(part, newline="") as f:
            header, *body = list(csv.reader(f))
        rows += body
    return [header, *rows]


@pytest.mark.usefixtures("spark")
def test_a_folder_to_csv_with_keys_as_spark_writes_it(capsys, spark_artifacts, tmp_path):
    """A folder of two files: numbered in name order as the local engine numbers their
    concatenation; with text keys (commas, quotes) to CSV, the rows Spark's own path
    writes."""
    (tmp_path / "in").mkdir()
    x = housing_file(tmp_path / "in" / "part-1.parquet", 600, 50, seed=5)
    x2 = housing_file(tmp_path / "in" / "part-2.parquet", 300, 300, seed=6)
    pq.write_table(pa.table({n: np.concatenate([x[:, j], x2[:, j]])
                             for j, n in enumerate(HOUSING_FEATURES)}), tmp_path / "all.parquet")
    assert run(capsys, spark_artifacts, "local", "--model", "housing", "--input",
               tmp_path / "all.parquet", "--output", tmp_path / "local.csv")[0] == 0
    code, _, err = run(capsys, spark_artifacts, "spark", "--model", "housing", "--input",
                       tmp_path / "in", "--output", tmp_path / "rows.csv", "--io", "workers")
    assert code == 0, err
    local, workers = read_csv(tmp_path / "local.csv"), read_csv(tmp_path / "rows.csv")
    assert workers[0] == local[0] == ["row", "prediction"]
    assert [r[0] for r in workers[1:]] == [str(i) for i in range(900)]
    np.testing.assert_allclose(np.array([r[1] for r in workers[1:]], float),
                               np.array([r[1] for r in local[1:]], float), rtol=1e-5, atol=1e-6)
    assert (tmp_path / "rows.csv" / "_SUCCESS").exists()
    assert not (tmp_path / "rows.csv.errors.jsonl").exists()

    # text keys and a bad cell in the second file: the same rows and report from both paths
    (tmp_path / "keyed").mkdir()
    keys = [f'house "{i}", north' for i in range(900)]
    tax = x2[:, HOUSING_FEATURES.index("TAX")].copy()
    tax[100] = np.nan
    for name, rows, part in (("part-1", slice(0, 600), x), ("part-2", slice(600, 900), x2)):
        columns = {n: part[:, j] for j, n in enumerate(HOUSING_FEATURES)}
        if name == "part-2":
            columns["TAX"] = tax
        pq.write_table(pa.table({"key": keys[rows], **columns}),
                       tmp_path / "keyed" / f"{name}.parquet", row_group_size=70)
    out = {}
    for io in ("workers", "spark"):
        code, _, err = run(capsys, spark_artifacts, "spark", "--model", "housing", "--input",
                           tmp_path / "keyed", "--output", tmp_path / f"{io}.csv", "--io", io,
                           "--id-column", "key")
        assert code == 2, err
        report = tmp_path / f"{io}.csv.errors.jsonl"
        errors = [orjson.loads(line) for part in sorted(report.glob("part-*"))
                  for line in part.read_bytes().splitlines()]
        out[io] = (sorted(map(tuple, read_csv(tmp_path / f"{io}.csv")[1:])), errors)
    assert out["workers"][1] == out["spark"][1]
    assert [(e["key"], "TAX" in e["error"]) for e in out["workers"][1]] == [(keys[700], True)]
    (wrows, _), (srows, _) = out["workers"], out["spark"]
    assert [k for k, _ in wrows] == [k for k, _ in srows] == sorted(k for i, k in
                                                                      enumerate(keys) if i != 700)
    np.testing.assert_allclose(np.array([v for _, v in wrows], float),
                               np.array([v for _, v in srows], float), rtol=1e-6)


@pytest.mark.usefixtures("spark")
def test_io_workers_says_when_it_cannot(capsys, spark_artifacts, tmp_path):
    with open(tmp_path / "h.csv", "w") as f:
        f.write(",".join(HOUSING_FEATURES) + "\n" + ",".join(["1"] * 13) + "\n")
    code, out, err = run(capsys, spark_artifacts, "spark", "--model", "housing", "--input",
                         tmp_path / "h.csv", "--output", tmp_path / "p.parquet", "--io",
                         "workers")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert "--io workers reads Parquet" in err and "the input is csv (use --io spark)" in err
    code, _, err = run(capsys, spark_artifacts, "local", "--model", "housing", "--input",
                       tmp_path / "h.csv", "--output", tmp_path / "p.csv", "--io", "spark")
    assert code == 2 and "--io is for --engine spark" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.csv"]
