"""Parquet input: read one row group's batches at a time, so memory stays flat for any
file size; columns as in ``arrow_batches``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from model.errors import DataError
from model.interface import ModelInterface

from .arrow_batches import arrow_chunk, plan_arrow
from .source import Chunk, Source


class ParquetSource(Source):
    """A Parquet file of named input columns (or one list column) and an optional target."""

    format = "parquet"
    unit = "rows"

    def __init__(self, path: Path, sig: ModelInterface) -> None:
        super().__init__(path, sig)
        try:
            self._file = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as e:
            raise DataError(path, f"cannot read as Parquet: {e}") from None
        try:
            self.plan = plan_arrow(self._file.schema_arrow, sig, path)
            self.total = self._file.metadata.num_rows
            if self.total == 0:
                raise DataError(path, "no rows")
        except BaseException:
            self.close()
            raise
        self.has_targets = self.plan.target is not None

    def chunks(self, rows: int) -> Iterator[Chunk]:
        plan = self.plan
        columns = [*plan.inputs, *filter(None, (plan.listed, plan.target))]
        start = 0
        try:
            for batch in self._file.iter_batches(batch_size=rows, columns=columns):
                yield arrow_chunk(batch, plan, self.sig, start)
                start += batch.num_rows
        except (OSError, pa.ArrowException) as e:
            raise DataError(self.path, f"unreadable: {e}", f"after row {start}") from None

    def close(self) -> None:
        self._file.close()
