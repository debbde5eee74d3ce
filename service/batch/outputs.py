"""Output files of the batch scorer: predictions (CSV, JSON Lines or Parquet), the error
report, and the metrics when the input carries true values.

Both files are written under temporary names beside their targets and renamed into place
only when the whole input has been scored, so a failed or interrupted run leaves no partial
output. Numbers are float32 written by orjson in the shortest form that reads back as the
same float32 - the service's format, so local and remote runs write identical bytes.
Parquet holds the same columns as CSV (``tables``), the numbers as float32 themselves.
"""

from __future__ import annotations

import math
import os
import secrets
from pathlib import Path
from typing import IO

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from model.interface import ModelInterface, Prediction

from .inputs import RowError
from .tables import output_schema, prediction_arrays

#: the error report's name: the output's, with this appended
ERRORS_SUFFIX = ".errors.jsonl"
OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def _line_template(fmt: str, iface: ModelInterface) -> bytes:
    """One output line of (row, prediction), or (row, label, probabilities) for a classifier,
    the classifier's fields named by its interface's outputs."""
    if iface.task != "classification":
        return b"%s,%s\n" if fmt == "csv" else b'{"row":%s,"prediction":%s}\n'
    probs_name, label_name = iface.output_names
    return b"%s,%s,%s\n" if fmt == "csv" else \
        b'{"row":%%s,"%s":%%s,"%s":[%%s]}\n' % (label_name.encode(), probs_name.encode())


def output_format(path: Path) -> str | None:
    """csv, jsonl or parquet by the output file's extension, None if none of them."""
    return OUTPUT_FORMATS.get(path.suffix.lower())


def error_report_path(output: Path) -> Path:
    """``<output>.errors.jsonl``."""
    return output.with_name(output.name + ERRORS_SUFFIX)


class AtomicFile:
    """A file written as ``.<name>.<random>.tmp`` beside ``path``, renamed onto ``path`` by
    ``commit()``; ``discard()`` removes it. Created lazily, on the first write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        self._file: IO[bytes] | None = None

    def write(self, data: bytes) -> None:
        self.handle().write(data)

    def handle(self) -> IO[bytes]:
        """The temporary file, created on first use."""
        if self._file is None:
            # "x": a new file with the usual permissions (umask), never someone else's
            self._file = open(self.temp, "xb", buffering=1 << 20)  # noqa: SIM115
        return self._file

    @property
    def started(self) -> bool:
        return self._file is not None

    def commit(self) -> None:
        if self._file is None:
            self.write(b"")
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.temp, self.path)
        self._file = None

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self.temp.unlink(missing_ok=True)


def _tokens(values: np.ndarray) -> list[bytes]:
    """Each element of a 1-D array as orjson writes it."""
    return orjson.dumps(values, option=_NUMPY)[1:-1].split(b",")


def _row_tokens(values: np.ndarray) -> list[bytes]:
    """Each row of a 2-D array as orjson writes it, without brackets: b"0.1,0.9"."""
    text = orjson.dumps(np.ascontiguousarray(values), option=_NUMPY)
    return text[2:-2].split(b"],[")


class Writer:
    """Writes scored chunks, in order, to the output and the error report."""

    def __init__(self, path: Path, fmt: str, sig: ModelInterface) -> None:
        self.fmt = fmt
        self.classification = sig.task == "classification"
        self.out = AtomicFile(path)
        self.errors = AtomicFile(error_report_path(path))
        self.scored = 0
        self.failed = 0
        self.sig = sig
        if fmt == "parquet":
            return
        #: one output line from the row's fields as orjson writes them
        self.line = _line_template(fmt, sig)
        if fmt == "csv":
            columns = ["row", sig.output_names[-1], *(f"p{label}" for label in sig.labels or ())] \
                if self.classification else ["row", "prediction"]
            self.out.write((",".join(columns) + "\n").encode())

    def write(self, rows: np.ndarray, prediction: Prediction | None,
              errors: list[RowError]) -> None:
        """Predictions of ``rows`` ((m,) record numbers) and the errors of a chunk."""
        if errors:
            self.errors.write(b"".join(orjson.dumps(e.as_dict()) + b"\n" for e in errors))
            self.failed += len(errors)
        if prediction is None or len(rows) == 0:
            return
        self.scored += len(rows)
        self._write_rows(rows, prediction)

    def _write_rows(self, rows: np.ndarray, prediction: Prediction) -> None:
        if self.classification:
            columns = [_tokens(rows), _tokens(prediction.labels),
                       _row_tokens(prediction.probabilities)]
        else:
            columns = [_tokens(rows), _tokens(prediction.values)]
        line = self.line
        lines = [line % fields for fields in zip(*columns, strict=True)]
        self.out.write(b"".join(lines))

    def commit(self) -> None:
        """Put the output (and the error report, if any row failed) in place; remove an
        error report an earlier run left when no row failed."""
        self._close()
        self.out.commit()
        if self.errors.started:
            self.errors.commit()
        else:
            self.errors.path.unlink(missing_ok=True)

    def _close(self) -> None:
        """Finish the output's content (a table format's footer)."""

    def discard(self) -> None:
        self.out.discard()
        self.errors.discard()


class ParquetWriter(Writer):
    """A Writer of Parquet: one row group per written chunk, columns as in ``tables``."""

    def __init__(self, path: Path, sig: ModelInterface, listed: bool = False) -> None:
        super().__init__(path, "parquet", sig)
        self.listed = listed
        self._schema = output_schema(sig, pa.field("row", pa.int64()), listed)
        self._table: pq.ParquetWriter | None = None

    def _parquet(self) -> pq.ParquetWriter:
        if self._table is None:
            self._table = pq.ParquetWriter(self.out.handle(), self._schema)
        return self._table

    def _write_rows(self, rows: np.ndarray, prediction: Prediction) -> None:
        arrays = [pa.array(rows, pa.int64()), *prediction_arrays(self.sig, prediction, self.listed)]
        self._parquet().write_batch(pa.record_batch(arrays, schema=self._schema))

    def _close(self) -> None:
        self._parquet().close()


def open_writer(path: Path, fmt: str, sig: ModelInterface, listed: bool = False) -> Writer:
    """The writer of ``fmt`` (csv, jsonl or parquet) at ``path``; ``listed``: a classifier's
    probabilities as one list column (Parquet)."""
    return ParquetWriter(path, sig, listed) if fmt == "parquet" else Writer(path, fmt, sig)


class TargetMetrics:
    """Running accuracy (classification) or RMSE and MAE (regression) over the scored rows
    that carry a true value; memory does not grow with the input."""

    def __init__(self, sig: ModelInterface) -> None:
        self.classification = sig.task == "classification"
        self.n = 0
        self.missing = 0
        self.correct = 0
        self.squared = 0.0
        self.absolute = 0.0

    def add(self, prediction: Prediction | None, targets: np.ndarray | None) -> None:
        """Targets: (m,) float64 of the scored rows, NaN where a row has none."""
        if prediction is None or targets is None or len(targets) == 0:
            return
        known = ~np.isnan(targets)
        self.missing += int((~known).sum())
        if not known.any():
            return
        self.n += int(known.sum())
        if self.classification:
            self.correct += int((prediction.labels[known] == targets[known]).sum())
        else:
            err = prediction.values[known].astype(np.float64) - targets[known]
            self.squared += float(np.dot(err, err))
            self.absolute += float(np.abs(err).sum())

    def result(self) -> dict[str, float | int] | None:
        if self.n == 0:
            return None
        if self.classification:
            return {"accuracy": self.correct / self.n, "n": self.n}
        return {"rmse": math.sqrt(self.squared / self.n), "mae": self.absolute / self.n,
                "n": self.n}
