"""What every input reader shares: the records it yields (``Chunk``), the ones it cannot read
(``RowError``), the reader contract (``Source``) and the text-file base (gzip, lines, bytes
of progress)."""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any

import numpy as np

from model.errors import DataError
from model.idx import GZIP_MAGIC
from model.interface import ModelInterface

GZIP_ERRORS = (OSError, EOFError, zlib.error)


@dataclass(frozen=True)
class RowError:
    """A record that could not be scored: its number, line (text formats), why."""

    row: int
    line: int | None
    error: str
    #: the service's per-instance details (validation errors), else None
    details: Any = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row}
        if self.line is not None:
            out["line"] = self.line
        out["error"] = self.error
        if self.details is not None:
            out["details"] = self.details
        return out


@dataclass
class Chunk:
    """Consecutive records of an input file, as read.

    ``rows``: (k,) int64 record numbers of the records read; ``lines``: their 1-based line
    numbers (text formats) or None; either ``values`` (numeric (k, ...) array: CSV, IDX) or
    ``instances`` (k V1 instances: JSON Lines) holds them; ``targets``: (k,) float64 true
    values or labels, NaN where a record has none; ``errors``: records that could not be
    read; ``consumed``: progress made, in the source's ``unit``.
    """

    rows: np.ndarray
    lines: np.ndarray | None
    values: np.ndarray | None = None
    instances: list[Any] | None = None
    check_booleans: bool = False
    targets: np.ndarray | None = None
    errors: list[RowError] = field(default_factory=list)
    consumed: int = 0

    def line(self, i: int) -> int | None:
        return None if self.lines is None else int(self.lines[i])


class Source:
    """An open input file: ``chunks(rows)`` yields Chunks; ``total`` and ``unit`` size a
    progress bar; ``has_targets`` says whether records may carry true values."""

    format = ""
    unit = "B"

    def __init__(self, path: Path, sig: ModelInterface) -> None:
        self.path = path
        self.sig = sig
        self.total = 0
        self.has_targets = False

    def chunks(self, rows: int) -> Iterator[Chunk]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def usable_targets(values: np.ndarray, sig: ModelInterface) -> np.ndarray:
    """float64 targets, NaN where a value cannot be a target: not finite (regression), or
    not a class index 0..classes-1 (classification)."""
    t = np.asarray(values, dtype=np.float64)
    if sig.task == "classification":
        with np.errstate(invalid="ignore"):
            ok = (t == np.floor(t)) & (t >= 0) & (t < len(sig.labels or ()))
        return np.where(ok, t, np.nan)
    return np.where(np.isfinite(t), t, np.nan)


# -- text files ------------------------------------------------------------------------------
class TextSource(Source):
    """A text file (maybe gzip), read in chunks of lines; progress in bytes of the file."""

    binary = False

    def __init__(self, path: Path, sig: ModelInterface) -> None:
        super().__init__(path, sig)
        try:
            self._raw = open(path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as e:
            raise DataError(path, f"cannot read: {e.strerror or e}") from e
        self.total = os.fstat(self._raw.fileno()).st_size
        stream: IO[bytes] = self._raw
        if self._raw.read(2) == GZIP_MAGIC:
            stream = gzip.GzipFile(fileobj=self._raw)
        self._raw.seek(0)
        self._file: IO[Any] = stream if self.binary else io.TextIOWrapper(
            stream, encoding="utf-8-sig", errors="surrogateescape")
        self._position = 0
        self.line = 0  # lines read so far
        self.row = 0   # records read so far

    def _lines(self, n: int) -> list[Any]:
        try:
            lines = list(islice(self._file, n))
        except GZIP_ERRORS as e:
            raise DataError(self.path, f"corrupt gzip stream: {e}", f"after line {self.line}") \
                from e
        return lines

    def _progress(self) -> int:
        """Bytes of the file consumed since the last call."""
        position = self._raw.tell()
        step, self._position = position - self._position, position
        return step

    def close(self) -> None:
        if self._file is not self._raw:
            self._file.close()
        self._raw.close()

