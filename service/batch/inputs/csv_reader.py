"""CSV input: a header line naming the columns (see ``plan_columns``), then one record a line,
parsed a chunk at a time by NumPy's C reader."""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from model.errors import DataError
from model.interface import ModelInterface

from .source import Chunk, RowError, TextSource, usable_targets


class CsvSource(TextSource):
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
            self.columns, self.target = plan_columns(self.names, sig, path,
                                                     f"line {self.line} (header)")
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


def plan_columns(names: list[str], sig: ModelInterface, path: Path | str,
                 record: str) -> tuple[list[int], int | None]:
    """(the column of each model input, in input order; the target column or None).

    Tabular models: the header names every feature once, in any order, and optionally the
    target (the model's output name, e.g. MEDV); no other columns. Image models: an optional
    ``label`` column and exactly input_size pixel columns, in row-major order - or named
    ``pixel0``..``pixel783`` (or from ``pixel1``) or ``1x1``..``28x28`` (row x column), in
    which case they may come in any order. ``record`` says where the names were read
    (e.g. "line 1 (header)"), for the errors.
    """
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


def _pixel_order(names: list[str], shape: tuple[int, ...], path: Path | str,
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

