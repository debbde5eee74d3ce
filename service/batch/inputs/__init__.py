"""Input files of the batch scorer - CSV, JSON Lines, IDX - read in chunks of records.

A reader checks what it can before anything is scored (CSV header, IDX header and size,
labels file) and raises DataError for a file it cannot use. A record it cannot read becomes
a RowError and reading goes on. Records are numbered from 0 in file order; blank lines are
not records. Text formats also give each record's 1-based line number. CSV and JSON Lines
may be gzip-compressed (recognised by the magic bytes). Memory holds one chunk at a time.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

from model.errors import DataError
from model.idx import DTYPES, GZIP_MAGIC, IdxReader, read_idx
from model.interface import ModelInterface

from ...core import jsonio
from ...core.errors import MalformedJSON

FORMATS = ("csv", "jsonl", "idx")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_GZIP_ERRORS = (OSError, EOFError, zlib.error)


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


def detect_format(path: Path) -> str:
    """csv, jsonl or idx from the name (.csv, .jsonl/.ndjson, optionally .gz; IDX names like
    ``t10k-images-idx3-ubyte``) or else from the first bytes (IDX magic number)."""
    name = path.name.lower().removesuffix(".gz")
    suffix = Path(name).suffix
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    if re.search(r"idx\d", name) or suffix == ".idx":
        return "idx"
    head = _peek(path)
    if len(head) >= 4 and head[:2] == b"\0\0" and head[2] in DTYPES:
        return "idx"
    raise DataError(path, "cannot tell the format from the name: expected .csv, .jsonl or "
                          ".ndjson, or an IDX file (e.g. t10k-images-idx3-ubyte.gz); or "
                          "name it with --format")


def _peek(path: Path) -> bytes:
    """The first bytes of the file's content (decompressed if it is gzip)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if head[:2] == GZIP_MAGIC:
                f.seek(0)
                with gzip.GzipFile(fileobj=f) as z:
                    head = z.read(4)
    except _GZIP_ERRORS:
        return b""
    return head


def open_source(path: Path, fmt: str, sig: ModelInterface, labels: Path | None = None) -> Source:
    """Open ``path`` as ``fmt`` for a model of signature ``sig``; DataError if unusable."""
    if fmt != "idx" and labels is not None:
        raise DataError(labels, "--labels is for IDX input; CSV and JSON Lines records carry "
                                "their own labels")
    if fmt == "csv":
        return CsvSource(path, sig)
    if fmt == "jsonl":
        return JsonlSource(path, sig)
    return IdxSource(path, sig, labels if labels is not None else sibling_labels(path))


def sibling_labels(path: Path) -> Path | None:
    """``...-labels-idx1-ubyte[.gz]`` beside an ``...-images-idx3-ubyte[.gz]`` file."""
    name = path.name
    if "images-idx3-ubyte" not in name:
        return None
    base = name.replace("images-idx3-ubyte", "labels-idx1-ubyte").removesuffix(".gz")
    for candidate in (path.with_name(base + ".gz"), path.with_name(base)):
        if candidate.is_file():
            return candidate
    return None


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
class _TextSource(Source):
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
        except _GZIP_ERRORS as e:
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


class CsvSource(_TextSource):
    """A CSV file with a header line; see ``plan_columns`` for the column rules.

    Chunks are parsed by NumPy's C reader; a chunk with a bad line is split in halves
    until the bad lines are alone, so a few bad lines cost a few extra parses.
    """

    format = "csv"

    def __init__(self, path: Path, sig: ModelInterface) -> None:
        super().__init__(path, sig)
        try:
            header = self._header()
            self.names = [c.strip() for c in header]
            self.columns, self.target = plan_columns(self.names, sig, path, self.line)
        except BaseException:
            self.close()
            raise
        self.header_line = self.line
        self.has_targets = self.target is not None

    def _header(self) -> list[str]:
        while True:
            lines = self._lines(1)
            if not lines:
                what = "empty file" if self.line == 0 else "no header (only blank lines)"
                raise DataError(self.path, f"{what}: expected a CSV header line naming the "
                                           "columns, then one record a line")
            self.line += 1
            if lines[0].strip():
                try:
                    return next(csv.reader(lines))
                except csv.Error as e:
                    raise DataError(self.path, f"unreadable header: {e}",
                                    f"line {self.line}") from None

    def chunks(self, rows: int) -> Iterator[Chunk]:
        while lines := self._lines(rows):
            yield self._parse(lines)
        if self.row == 0:
            raise DataError(self.path, "no data rows after the header",
                            f"line {self.header_line}")

    def _parse(self, lines: list[str]) -> Chunk:
        first_line, first_row = self.line + 1, self.row
        self.line += len(lines)
        parsed = parse_lines(lines, self.names)
        self.row += parsed.records
        errors = [RowError(first_row + r, first_line + p, message)
                  for p, r, message in parsed.bad]
        table = parsed.table
        values = table[:, self.columns] if self.columns != list(range(table.shape[1])) \
            else table
        targets = usable_targets(table[:, self.target], self.sig) \
            if self.target is not None else None
        return Chunk(rows=first_row + parsed.ranks, lines=first_line + parsed.positions,
                     values=values, targets=targets, errors=errors,
                     consumed=self._progress())


class Parsed(NamedTuple):
    """CSV data lines parsed: ``table`` (k, columns) float64 of the lines read, their
    ``positions`` in the chunk and ``ranks`` among its non-blank lines (records), how many
    ``records`` the chunk holds, and ``bad``: [(position, rank, message)] of the others."""

    table: np.ndarray
    positions: np.ndarray
    ranks: np.ndarray
    records: int
    bad: list[tuple[int, int, str]]


def parse_lines(lines: list[str], names: list[str]) -> Parsed:
    """Parse CSV data lines of ``len(names)`` numbers each; see Parsed."""
    width = len(names)
    try:
        table = _loadtxt(lines, width)
        index = np.arange(len(lines))
        return Parsed(table, index, index, len(lines), [])
    except ValueError:
        pass
    records = [i for i, line in enumerate(lines) if line.strip()]
    parts: list[tuple[int, int, np.ndarray]] = []
    bad: list[tuple[int, int, str]] = []

    def split(lo: int, hi: int) -> None:
        try:
            parts.append((lo, hi, _loadtxt([lines[i] for i in records[lo:hi]], width)))
        except ValueError:
            if hi - lo == 1:
                bad.append((records[lo], lo, _diagnose(lines[records[lo]], names)))
                return
            mid = (lo + hi) // 2
            split(lo, mid)
            split(mid, hi)

    if records:
        split(0, len(records))
    ranks = np.concatenate([np.arange(lo, hi) for lo, hi, _ in parts]) if parts \
        else np.empty(0, np.int64)
    table = np.concatenate([t for _, _, t in parts]) if parts else np.empty((0, width))
    positions = np.asarray(records, np.int64)[ranks] if parts else np.empty(0, np.int64)
    return Parsed(table, positions, ranks, len(records), bad)


def _loadtxt(lines: list[str], width: int) -> np.ndarray:
    """(len(lines), width) float64, or ValueError: NumPy's C parser (blank lines count
    against the shape, so a chunk with one takes the slow path)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
        table = np.loadtxt(lines, delimiter=",", comments=None, quotechar='"', ndmin=2,
                           dtype=np.float64)
    if table.shape != (len(lines), width):
        raise ValueError(f"shape {table.shape}")
    return table


def _diagnose(line: str, names: list[str]) -> str:
    """Why one CSV line is not ``len(names)`` numbers, in words."""
    try:
        cells = next(csv.reader([line]))
    except csv.Error as e:
        return f"unreadable line: {e}"
    if len(cells) != len(names):
        return f"expected {len(names)} comma-separated fields, found {len(cells)}"
    for name, cell in zip(names, cells, strict=True):
        text = cell.strip()
        if not text:
            return f"column {name}: empty cell"
        try:
            _loadtxt([text], 1)
        except ValueError:
            return f"column {name}: {text!r} is not a number"
    return "cannot read the line as numbers"


def plan_columns(names: list[str], sig: ModelInterface, path: Path,
                 line: int) -> tuple[list[int], int | None]:
    """(the column of each model input, in input order; the target column or None).

    Tabular models: the header names every feature once, in any order, and optionally the
    target (the model's output name, e.g. MEDV); no other columns. Image models: an optional
    ``label`` column and exactly input_size pixel columns, in row-major order - or named
    ``pixel0``..``pixel783`` (or from ``pixel1``) or ``1x1``..``28x28`` (row x column), in
    which case they may come in any order.
    """
    record = f"line {line} (header)"
    if all(_is_number(n) for n in names):
        raise DataError(path, "the first line holds numbers, not column names: a CSV file "
                              "needs a header line", record)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(path, f"duplicate columns: {', '.join(duplicates)}", record)
    if sig.features is not None:
        target = sig.outputs[0].name
        problems = []
        missing = [f for f in sig.features if f not in names]
        if missing:
            problems.append(f"missing columns: {', '.join(missing)}")
        extra = [n for n in names if n not in sig.features and n != target]
        if extra:
            problems.append(f"unexpected columns: {_some(extra)}")
        if problems:
            raise DataError(path, "; ".join(problems) + f" (expected the {len(sig.features)} "
                            f"features {' '.join(sig.features)} in any order, and optionally "
                            f"{target})", record)
        return [names.index(f) for f in sig.features], \
            names.index(target) if target in names else None
    target_col = names.index("label") if "label" in names else None
    pixels = [i for i, n in enumerate(names) if n != "label"]
    if len(pixels) != sig.input_size:
        raise DataError(path, f"expected {sig.input_size} pixel columns besides an optional "
                              f"'label' column, found {len(pixels)}", record)
    order = _pixel_order([names[i] for i in pixels], sig.input_shape, path, record)
    return [pixels[k] for k in order], target_col


def _pixel_order(names: list[str], shape: tuple[int, ...], path: Path,
                 record: str) -> list[int]:
    """Positions of the pixel columns in row-major order, from their names if they follow
    a numbering scheme, else as they come."""
    size = len(names)
    numbered = [re.fullmatch(r"pixel(\d+)", n) for n in names]
    if all(numbered):
        numbers = [int(m[1]) for m in numbered]  # type: ignore[index]
        base = min(numbers)
        if base not in (0, 1) or sorted(numbers) != list(range(base, base + size)):
            raise DataError(path, f"pixel columns must be pixel0..pixel{size - 1} (or "
                                  f"pixel1..pixel{size}), each once", record)
        return sorted(range(size), key=numbers.__getitem__)
    grid = [re.fullmatch(r"(\d+)x(\d+)", n) for n in names]
    if all(grid) and len(shape) == 2:
        h, w = shape
        cells = [(int(m[1]), int(m[2])) for m in grid]  # type: ignore[index]
        if sorted(cells) != [(r, c) for r in range(1, h + 1) for c in range(1, w + 1)]:
            raise DataError(path, f"pixel columns must be 1x1..{h}x{w} (row x column), each "
                                  "once", record)
        return sorted(range(size), key=cells.__getitem__)
    return list(range(size))


def _some(names: list[str], most: int = 5) -> str:
    """'a', 'b', ... and 7 more: a readable list of what may be a whole line of garbage."""
    shown = [repr(n if len(n) <= 30 else n[:27] + "...") for n in names[:most]]
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(shown) + more


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class JsonlSource(_TextSource):
    """JSON Lines: each non-blank line one record.

    A record is an instance exactly as in the V1 API's ``instances`` (housing: an object of
    the named features or a list of them; mnist: 784 numbers or 28 lists of 28), or
    ``{"instance": <instance>, "label": <true value or class>}``. A tabular object may also
    carry its target under the model's output name (e.g. ``"MEDV": 24.0``).
    """

    format = "jsonl"
    binary = True

    def __init__(self, path: Path, sig: ModelInterface) -> None:
        super().__init__(path, sig)
        self.has_targets = True

    def chunks(self, rows: int) -> Iterator[Chunk]:
        while lines := self._lines(rows):
            yield self._parse(lines)
        if self.row == 0:
            raise DataError(self.path, "empty file: expected one JSON instance a line"
                            if self.line == 0 else "no records (only blank lines)")

    def _parse(self, lines: list[bytes]) -> Chunk:
        first_line = self.line + 1
        if self.line == 0 and lines[0].startswith(b"\xef\xbb\xbf"):
            lines[0] = lines[0][3:]  # a UTF-8 byte-order mark
        self.line += len(lines)
        instances: list[Any] = []
        rows: list[int] = []
        numbers: list[int] = []
        targets: list[float] = []
        errors: list[RowError] = []
        for pos, raw in enumerate(lines):
            text = raw.strip()
            if not text:
                continue
            row, self.row = self.row, self.row + 1
            try:
                obj = jsonio.loads(text, record=True)
            except MalformedJSON as exc:
                errors.append(RowError(row, first_line + pos, exc.message))
                continue
            instance, target, problem = self._unwrap(obj)
            if problem:
                errors.append(RowError(row, first_line + pos, problem))
                continue
            instances.append(instance)
            rows.append(row)
            numbers.append(first_line + pos)
            targets.append(target)
        return Chunk(rows=np.asarray(rows, np.int64), lines=np.asarray(numbers, np.int64),
                     instances=instances,
                     check_booleans=jsonio.may_hold_booleans(b"".join(lines), {}),
                     targets=usable_targets(np.asarray(targets, np.float64), self.sig),
                     errors=errors, consumed=self._progress())

    def _unwrap(self, obj: Any) -> tuple[Any, float, str | None]:
        """(instance, target or NaN, problem or None) of one parsed record."""
        if type(obj) is dict and "instance" in obj:
            extra = sorted(set(obj) - {"instance", "label"})
            if extra:
                return None, np.nan, (f"unexpected keys {', '.join(map(repr, extra))}: a record "
                                      'is an instance or {"instance": ..., "label": ...}')
            return obj["instance"], _number(obj.get("label")), None
        target = self.sig.outputs[0].name
        if type(obj) is dict and self.sig.features is not None and target in obj:
            obj = dict(obj)
            return obj, _number(obj.pop(target)), None
        return obj, np.nan, None


def _number(value: Any) -> float:
    return float(value) if type(value) is int or type(value) is float else np.nan


# -- IDX -------------------------------------------------------------------------------------
class IdxSource(Source):
    """IDX images (raw or gzip) and, when given or found beside them, their IDX labels."""

    format = "idx"
    unit = "rows"

    def __init__(self, path: Path, sig: ModelInterface, labels: Path | None) -> None:
        super().__init__(path, sig)
        self._reader = IdxReader(path)
        try:
            shape = self._reader.record_shape
            if shape not in (sig.input_shape, (sig.input_size,)):
                want = "x".join(map(str, sig.input_shape))
                raise DataError(path, f"records are {'x'.join(map(str, shape)) or 'scalars'}, "
                                      f"but the model takes {want} values")
            if self._reader.records == 0:
                raise DataError(path, "no records (the header says 0)")
            self.total = self._reader.records
            self.labels_path = labels
            self.labels = self._labels(labels) if labels is not None else None
        except BaseException:
            self._reader.close()
            raise
        self.has_targets = self.labels is not None

    def _labels(self, path: Path) -> np.ndarray:
        labels = read_idx(path)
        if labels.ndim != 1:
            raise DataError(path, f"expected 1-D labels, found {labels.ndim}-D data of shape "
                                  f"{labels.shape}")
        if len(labels) != self.total:
            raise DataError(path, f"{len(labels)} labels for the {self.total} records of "
                                  f"{self.path.name}")
        return labels

    def chunks(self, rows: int) -> Iterator[Chunk]:
        start = 0
        for block in self._reader.chunks(rows):
            k = len(block)
            targets = None if self.labels is None else \
                usable_targets(self.labels[start:start + k], self.sig)
            yield Chunk(rows=np.arange(start, start + k, dtype=np.int64), lines=None,
                        values=block, targets=targets, consumed=k)
            start += k

    def close(self) -> None:
        self._reader.close()
