"""``--io workers``: Spark schedules the job, and its Python workers read and write the files
themselves with pyarrow.

Spark's own path converts every input row from its columnar Parquet reader to a JVM row and
then to Arrow for the Python worker, and every answer back from Arrow to a row for its
Parquet writer. For narrow rows and a small model that costs more CPU than the scoring
(10M housing rows: ~20 s of the JVM's CPU, docs/SPARK.md). When the input is Parquet and
both paths are ones every executor opens as files (a local path or ``file:``, e.g. a shared
mount), the driver instead splits the input into slices of row groups from the files'
footers, and each task reads its slice, scores it with the local engine's code and writes
its own part files: the output and, if rows failed, the error records, so nothing is scored
twice. Spark still runs the tasks, ships the model and retries a failed task; a part file is
written under a hidden name and renamed, so a retried or failed attempt leaves nothing that
counts. The driver puts the folders in place as for the Spark path (``paths.Staging``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from model.errors import DataError
from model.interface import ModelInterface

from ..inputs.arrow_batches import ArrowPlan, arrow_chunk, plan_arrow
from ..outputs import AtomicFile, TargetMetrics
from ..scoring import LocalModel, score_chunk
from .artifact import ShippedModel, worker_model
from .worker import Counts, error_lines, scored_batch

#: a task's share of the input: about this many tasks a core, so no core waits long for
#: the last one (a row group is read whole; one bigger than a share is split in ranges)
TASKS_PER_CORE = 16
#: CSV rows as Spark's writer gives them: no header (the part's first line), quotes
#: only where a cell needs them
CSV_ROWS = pa_csv.WriteOptions(include_header=False, quoting_style="needed")


def local_path(path: str) -> str | None:
    """The file-system path of ``path`` if it is one (no scheme, or ``file:``), else None."""
    if path.startswith("file:"):
        return re.sub(r"^file:(//)?", "", path) or None
    if re.match(r"^[a-zA-Z][\w+.-]*:", path):
        return None
    return os.path.abspath(path)


def parquet_files(path: str) -> list[str] | None:
    """The Parquet files of a local input, in name order: the file itself, or a folder's
    files (Spark's own rule: names starting with ``_`` or ``.`` are not data); None when
    the folder holds folders (a partitioned table: Spark's reader knows those). DataError
    for a folder with no files."""
    if os.path.isfile(path):
        return [path]
    entries = sorted((e for e in os.scandir(path) if not e.name.startswith(("_", "."))),
                     key=lambda e: e.name)
    if not entries:
        raise DataError(path, "an empty folder: no data files")
    if any(e.is_dir() for e in entries):
        return None
    return [e.path for e in entries]


@dataclass(frozen=True)
class Slice:
    """One task's rows: ``rows`` rows from the ``skip``-th on of row groups ``groups`` of
    ``path``, numbered from ``first_row`` in the input."""

    path: str
    groups: tuple[int, ...]
    skip: int
    rows: int
    first_row: int


def plan_slices(files: list[str], sig: ModelInterface, id_column: str | None, cores: int,
                ) -> tuple[ArrowPlan, pa.Schema, list[Slice]]:
    """The columns plan (checked on the first file's schema; every file must have the
    same), the input schema and the slices: consecutive row groups of one file packed up
    to a share of the rows, a bigger row group split into equal ranges."""
    schema: pa.Schema | None = None
    groups: list[tuple[str, int, int]] = []  # (file, row group, rows)
    for file in files:
        try:
            meta = pq.read_metadata(file)
        except (OSError, pa.ArrowException) as e:
            raise DataError(file, f"cannot read as Parquet: {e}") from None
        file_schema = meta.schema.to_arrow_schema()
        if schema is None:
            schema = file_schema
        elif [(f.name, f.type) for f in file_schema] != [(f.name, f.type) for f in schema]:
            raise DataError(file, f"its columns differ from {files[0]}'s", "schema")
        groups += [(file, g, meta.row_group(g).num_rows) for g in range(meta.num_row_groups)]
    assert schema is not None, "no files"
    skip = [id_column] if id_column else []
    if id_column and id_column not in schema.names:
        raise DataError(files[0], f"no column {id_column!r} (--id-column)", "schema")
    plan = plan_arrow(schema, sig, files[0], skip=skip)
    total = sum(rows for *_, rows in groups)
    share = max(1, -(-total // (TASKS_PER_CORE * max(cores, 1))))
    slices: list[Slice] = []
    first = 0
    packed: list[tuple[str, int, int]] = []

    def close_pack() -> None:
        nonlocal first
        if packed:
            rows = sum(r for *_, r in packed)
            slices.append(Slice(packed[0][0], tuple(g for _, g, _ in packed), 0, rows, first))
            first += rows
            packed.clear()

    for file, g, rows in groups:
        if rows > share:
            close_pack()
            parts = -(-rows // share)
            for i in range(parts):
                lo, hi = rows * i // parts, rows * (i + 1) // parts
                slices.append(Slice(file, (g,), lo, hi - lo, first + lo))
            first += rows
            continue
        if packed and (packed[0][0] != file or sum(r for *_, r in packed) + rows > share):
            close_pack()
        packed.append((file, g, rows))
    close_pack()
    return plan, schema, slices


@dataclass(frozen=True)
class SliceTask:
    """What a Python worker runs for each slice (a plain RDD of the slices' numbers: no
    data passes through Spark, and its SQL Arrow runner costs more: 3.3 s before a first
    job's first task against 1.5 s): read it, score it in ``batch_rows`` chunks, write
    ``part-NNNNN`` of the output folder and, if rows failed, of the errors folder; answer
    the counts."""

    model: ShippedModel
    plan: ArrowPlan
    slices: tuple[Slice, ...]
    id_column: str | None
    out_schema: pa.Schema
    out_dir: str
    out_format: str
    errors_dir: str
    batch_rows: int
    listed: bool = False

    def __call__(self, index: int) -> Counts:
        return self._run(worker_model(self.model), index)

    def _read(self, part: Slice) -> Iterator[pa.RecordBatch]:
        """The slice's rows in batches; of a row group split in ranges, the batches before
        the range are decoded and dropped, and reading stops at its end."""
        plan = self.plan
        columns = [*filter(None, (self.id_column,)), *plan.inputs,
                   *filter(None, (plan.listed, plan.target))]
        end = part.skip + part.rows
        position = 0
        with pq.ParquetFile(part.path) as file:
            for batch in file.iter_batches(self.batch_rows, row_groups=list(part.groups),
                                           columns=columns):
                lo, hi = max(part.skip - position, 0), min(end - position, batch.num_rows)
                position += batch.num_rows
                if hi > lo:
                    yield batch.slice(lo, hi - lo)
                if position >= end:
                    return

    def _run(self, model: LocalModel, index: int) -> Counts:
        part = self.slices[index]
        sig = model.interface
        metrics = TargetMetrics(sig)
        scored = failed = 0
        out = AtomicFile(Path(self.out_dir) / f"part-{index:05d}.{self.out_format}")
        errors = AtomicFile(Path(self.errors_dir) / f"part-{index:05d}.jsonl")
        try:
            # every slice writes its part, empty or not, as Spark's writer does
            table = pq.ParquetWriter(out.handle(), self.out_schema) \
                if self.out_format == "parquet" else None
            if table is None:
                out.write((",".join(self.out_schema.names) + "\n").encode())
            first = part.first_row
            for batch in self._read(part):
                result = score_chunk(model, arrow_chunk(batch, self.plan, sig, 0))
                ids = batch.column(self.id_column) if self.id_column else \
                    pa.array(np.arange(first, first + batch.num_rows, dtype=np.int64))
                first += batch.num_rows
                if result.errors:
                    failed += len(result.errors)
                    errors.write(b"".join(error_lines(self.id_column or "row", ids,
                                                      result.errors)))
                if not len(result.rows):
                    continue
                scored += len(result.rows)
                metrics.add(result.prediction, result.targets)
                answer = scored_batch(sig, self.out_schema, ids, result, self.listed)
                if table is not None:
                    table.write_batch(answer)
                else:
                    pa_csv.write_csv(answer, out.handle(), CSV_ROWS)
            if table is not None:
                table.close()
            out.commit()
            if errors.started:
                errors.commit()
        except BaseException:
            out.discard()
            errors.discard()
            raise
        return Counts(scored, failed, metrics.n, metrics.missing, metrics.correct,
                      metrics.squared, metrics.absolute)
