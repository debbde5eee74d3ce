"""The same job on a real cluster: a Spark standalone master and two workers on 127.0.0.1
(the pyspark package's launcher), the project shipped as a zip through spark-submit
--py-files, as a user ships it; the answers are the local engine's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deploy.spark.standalone import StandaloneCluster, project_zip, spark_home
from service.batch.cli import main
from tests.factories import HOUSING_FEATURES, random_housing
from tests.spark_support import need_spark

ROOT = Path(__file__).resolve().parents[4]


def test_spark_submit_to_a_two_worker_standalone_cluster(capsys, spark_artifacts, tmp_path):
    need_spark()
    x, y = random_housing(3000, seed=31), np.linspace(5, 50, 3000)
    columns = {n: x[:, j] for j, n in enumerate(HOUSING_FEATURES)}
    columns["LSTAT"] = [None if i == 1234 else v for i, v in enumerate(x[:, 12].tolist())]
    pq.write_table(pa.table({**columns, "MEDV": y}), tmp_path / "h.parquet",
                   row_group_size=500)
    assert main(["--artifacts", str(spark_artifacts), "--no-progress", "--model", "housing",
                 "--input", str(tmp_path / "h.parquet"),
                 "--output", str(tmp_path / "local.parquet")]) == 2
    local_metrics = orjson.loads(capsys.readouterr().out)

    work = tmp_path / "job"
    work.mkdir()  # outside the checkout: the code comes from the zip
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    with StandaloneCluster(tmp_path / "cluster", workers=2) as cluster:
        run = subprocess.run(
            ["bash", str(spark_home() / "bin" / "spark-submit"), "--master", cluster.master_url,
             "--py-files", str(project_zip(tmp_path / "project.zip", ROOT)),
             "--executor-memory", "768m", "--conf", "spark.ui.enabled=false",
             "--conf", "spark.sql.files.maxPartitionBytes=65536",
             str(ROOT / "deploy" / "spark" / "submit.py"),
             "--engine", "spark", "--model", "housing", "--artifacts", str(spark_artifacts),
             "--input", str(tmp_path / "h.parquet"), "--output", str(tmp_path / "c.parquet")],
            cwd=work, env=env, capture_output=True, text=True, timeout=420)
        executors = sorted((tmp_path / "cluster" / "work").glob("app-*/*"))
    # spark-submit sends the Python driver's stderr to its stdout
    said = run.stdout.splitlines()
    assert run.returncode == 2, said
    assert any(f"on Spark ({cluster.master_url})" in line for line in said), said
    (metrics,) = [orjson.loads(line) for line in said if line.startswith("{")]
    assert len(executors) == 2, executors  # one executor on each worker
    assert metrics["n"] == local_metrics["n"] == 2999
    assert metrics["rmse"] == pytest.approx(local_metrics["rmse"], rel=1e-12)
    local, cluster_out = (pq.read_table(tmp_path / f"{n}.parquet") for n in ("local", "c"))
    assert cluster_out["row"].to_pylist() == local["row"].to_pylist()
    np.testing.assert_allclose(cluster_out["prediction"].to_numpy(),
                               local["prediction"].to_numpy(), rtol=1e-5, atol=1e-6)
    report = tmp_path / "c.parquet.errors.jsonl"
    assert [orjson.loads(line) for part in sorted(report.glob("part-*"))
            for line in part.read_bytes().splitlines()] == \
        [{"row": 1234, "error": "column LSTAT: null"}]
    assert not [p for p in cluster.pids() if os.path.exists(f"/proc/{p}")]
