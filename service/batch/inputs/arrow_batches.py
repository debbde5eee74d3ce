"""Arrow record batches as Chunks: the one conversion of columnar input that the Parquet
reader and the Spark engine's workers share, so both read a table the same way.

A table holds the model's inputs as named scalar columns (housing: the 13 features in any
order, optionally the target, e.g. MEDV; mnist: 784 pixel columns, named as in CSV) or as one
list column of input_size numbers (mnist), optionally with a ``label`` column. Cells that
cannot be a number (null, text that does not parse, a list of the wrong length) become
RowErrors; numbers go through the service's checks later, in scoring.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from model.errors import DataError
from model.interface import ModelInterface

from .csv_reader import plan_columns
from .source import Chunk, RowError, usable_targets


@dataclass(frozen=True)
class ArrowPlan:
    """Which columns feed the model: ``inputs`` in the model's input order (scalar columns),
    or the one list column ``listed``; ``target``: the true-value column or None."""

    inputs: tuple[str, ...]
    listed: str | None
    target: str | None


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _cells(t: pa.DataType) -> bool:
    """A scalar column type whose cells may be numbers: numeric, or text to parse."""
    return _numeric(t) or pa.types.is_string(t) or pa.types.is_large_string(t) \
        or pa.types.is_null(t)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def plan_arrow(schema: pa.Schema, sig: ModelInterface, path: Path | str,
               skip: Collection[str] = ()) -> ArrowPlan:
    """The plan for a table of ``schema`` (columns in ``skip``, e.g. an id column, are
    carried, not read); DataError naming the columns if the model cannot use it."""
    names = [n for n in schema.names if n not in skip]
    where = "schema"
    lists = [n for n in names if _is_list(schema.field(n).type)]
    if lists and sig.features is None:
        others = [n for n in names if n not in lists]
        if len(lists) != 1 or others not in ([], ["label"]):
            raise DataError(path, f"expected one list column of {sig.input_size} numbers and "
                                  f"optionally 'label', found columns {', '.join(names)}", where)
        value = schema.field(lists[0]).type.value_type
        if not _numeric(value):
            raise DataError(path, f"column {lists[0]}: a list of {value}, expected a list of "
                                  f"{sig.input_size} numbers", where)
        _check_cells(schema, others, path)
        return ArrowPlan((), lists[0], "label" if others else None)
    columns, target = plan_columns(names, sig, path, where)
    _check_cells(schema, names, path)
    return ArrowPlan(tuple(names[i] for i in columns), None,
                     names[target] if target is not None else None)


def _check_cells(schema: pa.Schema, names: list[str], path: Path | str) -> None:
    bad = [f"{n} ({schema.field(n).type})" for n in names if not _cells(schema.field(n).type)]
    if bad:
        raise DataError(path, f"columns that cannot hold numbers: {', '.join(bad)}", "schema")


def arrow_chunk(batch: pa.RecordBatch, plan: ArrowPlan, sig: ModelInterface,
                first_row: int) -> Chunk:
    """The records of ``batch``, numbered from ``first_row``; cells that are not numbers
    become RowErrors (the first bad cell of a record names it)."""
    k = batch.num_rows
    problems: dict[int, str] = {}
    if plan.listed is not None:
        values = _list_values(batch.column(plan.listed), plan.listed, sig.input_size, problems)
    else:
        values = np.empty((k, len(plan.inputs)), np.float64)
        for j, name in enumerate(plan.inputs):
            values[:, j] = _scalar_values(batch.column(name), name, problems)
    targets = None
    if plan.target is not None:
        targets = usable_targets(_scalar_values(batch.column(plan.target), plan.target, {}),
                                 sig)
    good = np.arange(k, dtype=np.int64)
    errors: list[RowError] = []
    if problems:
        bad = np.fromiter(sorted(problems), np.int64, len(problems))
        errors = [RowError(first_row + int(i), None, problems[int(i)]) for i in bad]
        good = np.setdiff1d(good, bad)
        values = values[good]
        targets = targets[good] if targets is not None else None
    return Chunk(rows=first_row + good, lines=None, values=values, targets=targets,
                 errors=errors, consumed=k)


def _scalar_values(column: pa.Array, name: str, problems: dict[int, str]) -> np.ndarray:
    """(k,) float64 of a scalar column; NaN where a cell is not a number, which then goes to
    ``problems`` (unless the record already has one)."""
    if pa.types.is_null(column.type):
        column = pa.nulls(len(column), pa.float64())
    try:
        numbers = pc.cast(column, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        numbers = pa.array([_parse(text) for text in column.to_pylist()], pa.float64())
    out = numbers.to_numpy(zero_copy_only=False)
    if numbers.null_count:
        texts = column.to_pylist()
        for i in np.flatnonzero(np.asarray(numbers.is_null())):
            text = texts[i]
            problems.setdefault(int(i), f"column {name}: null" if text is None else
                                f"column {name}: {text!r} is not a number")
    return out


def _parse(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _list_values(column: pa.Array, name: str, size: int,
                 problems: dict[int, str]) -> np.ndarray:
    """(m, size) float64 of a list column's records of ``size`` numbers (m <= k); the others
    go to ``problems``. A null number inside a list becomes NaN, for the service's checks."""
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    nulls = np.asarray(column.is_null())
    bad = nulls | (lengths != size)
    for i in np.flatnonzero(bad):
        problems[int(i)] = f"column {name}: null" if nulls[i] else \
            f"column {name}: expected {size} numbers, found {int(lengths[i])}"
    ok = column.filter(pa.array(~bad)) if bad.any() else column
    flat = pc.cast(ok.flatten(), pa.float64()).to_numpy(zero_copy_only=False)
    full = np.full((len(column), size), np.nan)
    full[~bad] = flat.reshape(-1, size)
    return full
