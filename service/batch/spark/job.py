"""``python -m service.batch --engine spark``: the batch scorer as a Spark job, with the local
engine's outputs, metrics, error report and exit codes.

The driver checks the model (exit 2 before Spark starts if it is missing) and plans one of
two jobs. Parquet on paths every executor opens as files: the workers read their slices
and write their part files themselves (``direct``, ``--io workers``). Anything else goes
through Spark (``--io spark``): it reads the input, numbers the rows in input order (or
takes ``--id-column``), and Python workers score Arrow batches (``worker``); one pass
writes the output as it is scored, the counts behind the summary and the metrics come
back in an accumulator, and only if some rows failed does a second pass write the error
dataset. Either way the artifact is shipped with the job, and the datasets are written
under temporary names and renamed into place at the end (``paths``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa

from model.errors import DataError

from ..errors import BatchError, UsageError
from ..inputs.arrow_batches import plan_arrow
from ..outputs import ERRORS_SUFFIX
from ..scoring import LocalModel, Summary
from ..tables import listed_probabilities
from .artifact import ship
from .direct import SliceTask, local_path, parquet_files, plan_slices
from .paths import HadoopFiles, Staging, finish_folder, sibling
from .worker import ERROR, Counts, ErrorTask, ScoringTask, scores_schema, tally_param

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ROW = "row"
#: Spark readers by input format; CSV cells arrive as text and are parsed as locally
READERS = {"parquet": "parquet", "csv": "csv", "jsonl": "json"}
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl",
             ".ndjson": "jsonl", ".json": "jsonl"}
OUTPUTS = {".parquet": "parquet", ".csv": "csv"}
#: a Spark session of its own splits the input into at least this many tasks a core, unless
#: the user set spark.sql.files.minPartitionNum
TASKS_PER_CORE = 8
MIN_PARTITIONS = "spark.sql.files.minPartitionNum"
_PARTITION_BITS = 33  # monotonically_increasing_id: partition index << 33 | row in partition
#: rows per Arrow batch the workers get (--chunk-size)
BATCH_ROWS = "spark.sql.execution.arrow.maxRecordsPerBatch"


class SparkFailure(BatchError):
    """The Spark job failed (an executor lost, a file gone mid-way): exit 1, one line."""


def _suffix(path: str) -> str:
    name = path.rstrip("/").rpartition("/")[2].lower().removesuffix(".gz")
    return os.path.splitext(name)[1]


def _is_local(path: str) -> bool:
    return not re.match(r"^[a-zA-Z][\w+.-]*://", path)


def check(args: argparse.Namespace) -> tuple[str, str]:
    """(input format, output format) of a Spark run, or UsageError / DataError."""
    for option, value in (("--url", args.url), ("--labels", args.labels),
                          ("--workers", args.workers)):
        if value is not None:
            raise UsageError(f"{option} is not for --engine spark (Spark's parallelism is its "
                             "executors: --master local[N], or the cluster's executor cores)")
    if args.format == "idx":
        raise UsageError("--engine spark reads Parquet, CSV and JSON Lines, not IDX")
    fmt = args.format or _SUFFIXES.get(_suffix(args.input), "parquet")
    out_format = OUTPUTS.get(_suffix(args.output))
    if out_format is None:
        raise UsageError(f"--output {args.output}: with --engine spark the name must end in "
                         ".parquet or .csv (a dataset folder)")
    if args.output.rstrip("/") == args.input.rstrip("/"):
        raise UsageError(f"--output {args.output} is the input")
    if _is_local(args.input) and not os.path.exists(args.input.removeprefix("file:")):
        raise DataError(args.input, "no such file or folder")
    parent = os.path.dirname(os.path.abspath(args.output))
    if _is_local(args.output) and not os.path.isdir(parent):
        raise UsageError(f"--output {args.output}: folder {parent} does not exist")
    return fmt, out_format


def session(master: str | None, batch_rows: int) -> tuple[SparkSession, bool]:
    """The active Spark session (a test's, a notebook's) or a new one; True if new."""
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    created = spark is None
    if spark is None:
        # Python workers run this interpreter (its packages) unless the user chose one.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = SparkSession.builder.appName("service.batch") \
            .config("spark.ui.showConsoleProgress", "false")
        if master:
            builder = builder.master(master)
        spark = builder.getOrCreate()
        if spark.conf.get(MIN_PARTITIONS, None) is None:
            # the input in several tasks a core: with one or two a core, the last tasks run
            # while cores wait (the file's row groups bound how small a task gets)
            spark.conf.set(MIN_PARTITIONS, str(TASKS_PER_CORE *
                                               spark.sparkContext.defaultParallelism))
    spark.conf.set(BATCH_ROWS, str(batch_rows))
    # batches are bounded by rows; a byte bound makes Spark size the batch after every row
    # it adds (measured: a quarter of the JVM's time on 10M housing rows)
    spark.conf.set("spark.sql.execution.arrow.maxBytesPerBatch", str(2**31 - 1))
    return spark, created


def read_input(spark: SparkSession, path: str, fmt: str) -> DataFrame:
    """The input as a DataFrame; DataError for a path or file Spark cannot read."""
    from pyspark.errors import AnalysisException

    reader = spark.read.option("header", "true") if fmt == "csv" else spark.read
    try:
        return getattr(reader, READERS[fmt])(path)
    except AnalysisException as exc:
        raise DataError(path, _first_line(exc)) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _cause(exc: BaseException) -> str:
    """The innermost error a failed job reports (a worker's traceback ends with it)."""
    lines = str(exc).strip().splitlines()
    raised = [m[1] for line in lines
              if (m := re.match(r"^(?:: |Caused by: )?([\w.$]+(?:Error|Exception|Failure): .*)",
                                line))]
    return raised[-1] if raised else _first_line(exc)


def with_positions(df: DataFrame, single_parquet: bool) -> DataFrame:
    """``df`` with ``row``: each record's number from 0 in input order, as the local engine
    numbers records. One Parquet file: its row index (``_metadata.row_index``, no extra
    pass). Otherwise partitions in file order, as Spark reads them, from per-partition counts
    (one cheap extra pass)."""
    from pyspark.sql import functions as F

    if single_parquet:
        return df.withColumn(ROW, F.col("_metadata.row_index").cast("long"))
    mid = F.monotonically_increasing_id()
    df = df.withColumn("_mid", mid)
    part = F.shiftright(F.col("_mid"), _PARTITION_BITS)
    counts = dict(df.groupBy(part.alias("p")).count().collect())
    offsets, total = [], 0
    for p in range(max(counts, default=-1) + 1):
        offsets.append(total)
        total += counts.get(p, 0)
    base = F.element_at(F.array(*(F.lit(o) for o in offsets or [0])), (part + 1).cast("int"))
    local = F.col("_mid") - F.shiftleft(part, _PARTITION_BITS)
    return df.withColumn(ROW, (base + local).cast("long")).drop("_mid")


def score_on_spark(args: argparse.Namespace, model: LocalModel, batch_rows: int) -> Summary:
    """Run the job; the output and error dataset are in place when it returns."""
    fmt, out_format = check(args)
    listed = listed_probabilities(args.probabilities, model.interface, out_format)
    spark, created = session(args.master, batch_rows)
    started = time.perf_counter()  # as locally: the scoring, not the engine's start
    try:
        return _score(spark, args, model, fmt, out_format, listed, started)
    finally:
        if created:
            spark.stop()


def _score(spark: SparkSession, args: argparse.Namespace, model: LocalModel, fmt: str,
           out_format: str, listed: bool, started: float) -> Summary:
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    sig = model.interface
    files = workers_input(args, fmt)
    job = _slices_job(spark, args, model, files, out_format, listed) if files is not None \
        else _dataframe_job(spark, args, model, fmt, out_format, listed)
    hadoop = HadoopFiles(spark)
    staging = Staging(hadoop)
    errors_path = sibling(args.output, ERRORS_SUFFIX)
    try:
        counts = job(staging, errors_path)
        staging.commit()
        if not counts.failed:
            hadoop.delete(errors_path)  # a stale report of an earlier run
    except (PySparkException, Py4JError) as exc:
        staging.discard()
        raise SparkFailure(f"the Spark job failed: {_cause(exc)}") from None
    except BaseException:
        staging.discard()
        raise
    master = spark.sparkContext.master
    return Summary(scored=counts.scored, failed=counts.failed,
                   seconds=time.perf_counter() - started, metrics=counts.metrics(sig).result(),
                   unlabelled=counts.missing, errors_path=errors_path if counts.failed else None,
                   notes=[master])


#: a job, planned and checked: it writes the output (and the error dataset if rows failed)
#: through ``Staging`` and answers the counts
Job = Callable[[Staging, str], Counts]


def workers_input(args: argparse.Namespace, fmt: str) -> list[str] | None:
    """The input's Parquet files if the workers read and write the files themselves
    (``--io workers``, or ``auto`` when they can), else None; UsageError if ``--io
    workers`` cannot be."""
    if args.io == "spark":
        return None
    source, target = local_path(args.input), local_path(args.output)
    files = parquet_files(source) if source is not None and fmt == "parquet" else None
    if files is not None and target is not None:
        return files
    if args.io == "workers":
        why = f"the input is {fmt}" if fmt != "parquet" else \
            "--input is not a local or file: path" if source is None else \
            "--input is a partitioned folder (folders in it)" if files is None else \
            "--output is not a local or file: path"
        raise UsageError(f"--io workers reads Parquet from, and writes to, local or file: "
                         f"paths; {why} (use --io spark)")
    return None


def _slices_job(spark: SparkSession, args: argparse.Namespace, model: LocalModel,
                files: list[str], out_format: str, listed: bool) -> Job:
    """The workers read their slices of the files and write their part files (``direct``)."""
    sig = model.interface
    sc = spark.sparkContext
    plan, schema, slices = plan_slices(files, sig, args.id_column, sc.defaultParallelism)
    id_field = schema.field(args.id_column) if args.id_column else pa.field(ROW, pa.int64())
    out_schema = scores_schema(sig, id_field, listed)
    batch_rows = int(spark.conf.get(BATCH_ROWS))

    def job(staging: Staging, errors_path: str) -> Counts:
        folders = [staging.folder(args.output), staging.folder(errors_path)]
        out_dir, errors_dir = (local_path(f) or f for f in folders)
        task = SliceTask(ship(sc, model), plan, tuple(slices), args.id_column, out_schema,
                         out_dir, out_format, errors_dir, batch_rows, listed)
        answers = sc.parallelize(range(len(slices)), max(1, len(slices))).map(task).collect()
        counts = sum(answers, Counts())
        for folder in (out_dir, errors_dir):
            finish_folder(folder)
        if not counts.failed:
            staging.drop(errors_path)
        return counts

    return job


def _dataframe_job(spark: SparkSession, args: argparse.Namespace, model: LocalModel,
                   fmt: str, out_format: str, listed: bool) -> Job:
    """Spark reads the input and writes the outputs; the workers score Arrow batches
    (``worker``)."""
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    sig = model.interface
    df = read_input(spark, args.input, fmt)
    id_column = args.id_column or ROW
    if args.id_column is not None and args.id_column not in df.columns:
        raise DataError(args.input, f"no column {args.id_column!r} (--id-column)", "schema")
    plan = plan_arrow(to_arrow_schema(df.schema), sig, args.input, skip=[id_column])

    def job(staging: Staging, errors_path: str) -> Counts:
        frame = df
        if args.id_column is None:
            frame = with_positions(frame, fmt == "parquet" and staging.files.is_file(args.input))
        frame = frame.select(id_column, *plan.inputs, *filter(None, (plan.listed, plan.target)))
        schema = scores_schema(sig, to_arrow_schema(frame.schema).field(id_column), listed)
        shipped = ship(spark.sparkContext, model)
        tally = spark.sparkContext.accumulator(Counts(), tally_param())
        # one pass: the output is written as the workers score; the counts come back with
        # each task (an accumulator of a write's tasks counts each partition once)
        scored = frame.mapInArrow(ScoringTask(shipped, plan, id_column, schema, tally, listed),
                                  from_arrow_schema(schema))
        writer = scored.write
        if out_format == "csv":  # RFC 4180 (a quote in a quoted cell doubled, not \")
            writer = writer.option("header", "true").option("escape", '"')
        staging.write(args.output, getattr(writer, out_format))
        counts: Counts = tally.value
        if counts.failed:
            # the rare case, a second pass: the failed rows' records, a part file per
            # input partition (in input order) that has any
            errors = frame.mapInArrow(ErrorTask(shipped, plan, id_column), f"{ERROR} string")
            staging.write(errors_path, errors.write.text)
        return counts

    return job
