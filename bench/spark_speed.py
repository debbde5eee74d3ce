"""Batch scoring on Spark beside the local engine, side by side in one run: a generated
housing table (default 10,000,000 rows) and 70,000 digits, both in Parquet, scored by the
local engine, by Spark ``local[2]`` (the workers reading and writing the files, the default
for Parquet, and Spark's own readers and writers, ``--io spark``) and by a two-worker
standalone cluster on 127.0.0.1 (spark-submit, the project shipped as a zip). Rows/s are
over the scorer's own seconds (reading, scoring, writing; not the JVM's start, which the
wall column includes). Per-row answers are compared with the local engine's.

The 70,000 digits are the 10,000 MNIST test images (../shared/data/mnist) seven times: the
60,000 training images are not on the project machines.

    python bench/spark_speed.py                       # the record
    python bench/spark_speed.py --rows 1000000        # shorter
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.batch_speed import (  # noqa: E402
    HOUSING_CSV,
    SHARED_MNIST,
    build_housing,
    build_mnist,
    latest,
    machine,
)
from deploy.spark.standalone import StandaloneCluster, project_zip, spark_home  # noqa: E402


def housing_parquet(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` bundled rows (with MEDV) drawn at random, each value times (1 + 1% noise)."""
    names = HOUSING_CSV.read_text().splitlines()[0].split(",")
    base = np.loadtxt(HOUSING_CSV, delimiter=",", skiprows=1)
    rng = np.random.default_rng(seed)
    schema = pa.schema([(n, pa.float64()) for n in names])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - start)
            x = base[rng.integers(0, len(base), n)] * (1 + 0.01 * rng.standard_normal((n, 14)))
            writer.write_table(pa.table(dict(zip(names, x.T, strict=True)), schema=schema),
                               row_group_size=250_000)


def digits_parquet(path: Path, images: Path, copies: int) -> int:
    from model.idx import read_idx

    x = np.tile(read_idx(images).reshape(-1, 784), (copies, 1))
    y = np.tile(read_idx(Path(str(images).replace("images-idx3", "labels-idx1"))), copies)
    pq.write_table(pa.table({"image": pa.FixedSizeListArray.from_arrays(
        pa.array(x.ravel(), pa.uint8()), 784), "label": y}), path, row_group_size=10_000)
    return len(x)


def run(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """(wall seconds, the scorer's own seconds) of one run."""
    started = time.perf_counter()
    with open(log, "w") as f:
        code = subprocess.run(cmd, cwd=log.parent, env=env, stdout=f, stderr=subprocess.STDOUT,
                              timeout=3600).returncode
    wall = time.perf_counter() - started
    text = log.read_text()
    found = re.search(r"rows with \S+ version \d+ .* in ([\d.]+) s", text)
    if code != 0 or not found:
        raise SystemExit(f"failed ({code}): {shlex.join(cmd)}\n{text[-3000:]}")
    return wall, float(found[1])


def answers(path: Path) -> np.ndarray:
    table = pq.read_table(path)
    return np.column_stack([table[c].to_numpy().astype(np.float64)
                            for c in table.column_names[1:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="housing rows")
    parser.add_argument("--digit-copies", type=int, default=7,
                        help="copies of the 10,000 test digits")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each command")
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    args = parser.parse_args()
    python = sys.executable
    env = {**os.environ, "PYSPARK_PYTHON": python, "SPARK_LOCAL_IP": "127.0.0.1",
           "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="spark-bench-") as tmp:
        work = Path(tmp)
        artifacts = {}
        for name, build in (("mnist", build_mnist), ("housing", build_housing)):
            if latest(args.artifacts, name) is None:
                build(work / "artifacts")
                artifacts[name] = work / "artifacts"
            else:
                artifacts[name] = args.artifacts.resolve()
        housing_parquet(work / "housing.parquet", args.rows)
        digits = digits_parquet(work / "digits.parquet", SHARED_MNIST, args.digit_copies)
        inputs = [("housing", work / "housing.parquet", args.rows),
                  ("mnist", work / "digits.parquet", digits)]
        print(f"Machine: {machine()}, Java: {java()}, Spark {spark_version()}\n")
        print("| input | engine | rows | wall s (median) | scoring s | rows/s | "
              "vs local | answers equal to local |")
        print("|---|---|---|---|---|---|---|---|")
        project = project_zip(work / "project.zip", ROOT)
        with StandaloneCluster(work / "cluster", workers=2, memory="4g") as cluster:
            engines = {
                "local": [python, "-m", "service.batch"],
                "Spark local[2]": [python, "-m", "service.batch", "--engine", "spark",
                                   "--master", "local[2]"],
                "Spark local[2], --io spark": [python, "-m", "service.batch", "--engine",
                                               "spark", "--master", "local[2]", "--io", "spark"],
                "standalone, 2 workers x 1 core": [
                    "bash", str(spark_home() / "bin" / "spark-submit"),
                    "--master", cluster.master_url, "--py-files", str(project),
                    "--executor-memory", "3g", "--driver-memory", "2g",
                    str(ROOT / "deploy" / "spark" / "submit.py"), "--engine", "spark"]}
            for name, path, rows in inputs:
                local_rate, local_out = 0.0, None
                for engine, prefix in engines.items():
                    out = work / f"{name}-{len(engine)}.parquet"
                    cmd = [*prefix, "--model", name, "--artifacts", str(artifacts[name]),
                           "--input", str(path), "--output", str(out), "--no-progress"]
                    runs = [run(cmd, {**env, "PYSPARK_SUBMIT_ARGS":
                                      "--driver-memory 4g pyspark-shell"}, work / "log.txt")
                            for _ in range(args.rounds)]
                    wall = statistics.median(r[0] for r in runs)
                    seconds = statistics.median(r[1] for r in runs)
                    rate = rows / seconds
                    got = answers(out)
                    if local_out is None:
                        local_rate, local_out, same = rate, got, "-"
                    else:
                        equal = int(np.all(got == local_out, axis=1).sum())
                        worst = float(np.max(np.abs(got - local_out) /
                                             np.maximum(np.abs(local_out), 1e-6)))
                        same = f"{equal:,} of {rows:,} bitwise; max rel. diff {worst:.1e}"
                    print(f"| {name} Parquet | {engine} | {rows:,} | {wall:.1f} | "
                          f"{seconds:.1f} | {rate:,.0f} | {rate / local_rate:.2f}x | {same} |",
                          flush=True)


def java() -> str:
    text = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    return text.splitlines()[0] if text else "unknown"


def spark_version() -> str:
    import pyspark

    return pyspark.__version__


if __name__ == "__main__":
    main()
