"""Input values: finiteness and range, the model's own rule, checked in three NumPy calls on
the fast path; the bad rows are named (at the field, for tabular models) with the model's
own wording (``model.predictor``), so the service and the batch scorer say the same."""

from __future__ import annotations

from typing import Any

import numpy as np

from model.interface import ModelInterface
from model.predictor import find_problems, value_problem

from .errors import InvalidRequest, first_message

#: How many bad instances (and positions per instance) error details list.
MAX_DETAILED = 10


def checked(iface: ModelInterface, arr: np.ndarray, path: tuple[str, ...]) -> np.ndarray:
    """Finiteness and range checks, then float32 (n, *input_shape); InvalidRequest naming
    the first MAX_DETAILED bad rows otherwise."""
    rows, details, bad = value_problems(iface, arr, MAX_DETAILED)
    if details:
        raise invalid({str(i): d for i, d in details.items()}, bad, len(rows), path)
    return rows.reshape(rows.shape[0], *iface.input_shape)


def value_problems(iface: ModelInterface, arr: np.ndarray, limit: int | None,
                   ) -> tuple[np.ndarray, dict[int, Any], int]:
    """(float32 rows (n, input_size), {index: messages} of the first ``limit`` bad rows (all
    if None), how many rows are bad) for a numeric batch ``arr`` of n instances.

    Fast path: the batch's float32 min and max are finite (NaN propagates through both) and
    inside the model's range - exactly when ``Predictor.find_problems`` finds nothing, in
    three NumPy calls instead of a dozen. Otherwise ``find_problems`` decides and names
    the bad rows, so the service and the batch scorer reject the same inputs.
    """
    n = arr.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        rows = arr.reshape(n, iface.input_size).astype(np.float32, order="C")  # see find_problems
    low, high = rows.min(), rows.max()
    rng = iface.value_range
    if np.isfinite(low) and np.isfinite(high) and (
            rng is None or (low >= rng[0] and high <= rng[1])):
        return rows, {}, 0
    rows, problems = find_problems(arr, iface.input_shape, iface.value_range)
    flat = arr.reshape(len(rows), -1)
    details: dict[int, Any] = {}
    for i in sorted(problems)[:limit]:
        msgs: Any = problems[i]
        if iface.features is not None:  # point at the field, not just the row
            bad = ~np.isfinite(rows[i])
            if iface.value_range is not None:
                bad |= (rows[i] < iface.value_range[0]) | (rows[i] > iface.value_range[1])
            msgs = {iface.features[j]: [_field_message(flat[i, j], iface)]
                    for j in np.flatnonzero(bad)} or msgs
        details[i] = msgs
    return rows, details, len(problems)


def _field_message(value: Any, iface: ModelInterface) -> str:
    """A bad value's message at its named field: "nan is not allowed: ...."."""
    v = value.item() if hasattr(value, "item") else value
    return f"{v!r} is {value_problem(v, iface.value_range)}."


def invalid(details: dict[str, Any], total: int, n: int,
            path: tuple[str, ...]) -> InvalidRequest:
    """InvalidRequest for ``total`` bad instances of ``n``, details nested under ``path``."""
    first = next(iter(details))
    shown = "" if total <= len(details) else f" (details for the first {len(details)})"
    nested: dict[str, Any] = details
    for key in reversed(path):
        nested = {key: nested}
    return InvalidRequest(f"{total} of {n} instances are invalid{shown}; first: instance "
                          f"{first}: {first_message(details[first])}", nested)
