"""The batch scorer's screening: the service's own checks over a chunk, every bad row named
(worded as the V1 API words that instance alone) and the good rows kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.interface import ModelInterface

from .instances import as_numeric, instance_problem, instance_schema, named_to_rows
from .values import value_problems


@dataclass(frozen=True)
class Screened:
    """A batch split into what can be predicted and what cannot.

    ``x``: float32 (m, *input_shape), the good rows in order; ``good``: (m,) int64, their
    indices in the batch; ``problems``: {index: messages} for every bad row, worded as the
    V1 API words ``details["instances"][index]``.
    """

    x: np.ndarray
    good: np.ndarray
    problems: dict[int, Any]


def screen_instances(iface: ModelInterface, instances: list[Any],
                     check_booleans: bool) -> Screened:
    """``instances_to_batch`` for a batch scorer: the same checks, but every bad instance is
    reported (worded as the service words it for that instance alone) and the others are
    kept. Each instance stands alone, so flat and nested layouts may be mixed."""
    values: Sequence[Any] = instances
    if iface.features is not None:
        values = named_to_rows(iface, instances)
    arr = None if check_booleans else as_numeric(values, iface)
    problems: dict[int, Any] = {}
    good = list(range(len(instances)))
    if arr is None:
        schema = instance_schema(iface)
        good = []
        for i, inst in enumerate(instances):
            problem = instance_problem(iface, schema, inst)
            if problem:
                problems[i] = problem
            else:
                good.append(i)
        values = [instances[i] for i in good]
        if iface.features is not None:
            values = named_to_rows(iface, values)
        arr = as_numeric(values, iface) if values else np.empty((0, iface.input_size))
        if arr is None:  # every instance is fine alone: they mix layouts
            arr = np.concatenate([_alone(iface, v).reshape(1, iface.input_size) for v in values])
    screened = screen_rows(iface, arr)
    for k in screened.problems:
        # quote the value as it reads alone: 256, not 256.0 because another instance has 0.5
        problems[good[k]] = value_problems(iface, _alone(iface, values[k]), None)[1][0]
    index = np.asarray(good, np.int64)
    return Screened(screened.x, index[screened.good], dict(sorted(problems.items())))


def _alone(iface: ModelInterface, value: Any) -> np.ndarray:
    """One instance that passed the structure checks, as a numeric batch of one."""
    arr = as_numeric([value], iface)
    if arr is None:
        raise ValueError("instance did not pass the structure checks")
    return arr


def screen_rows(iface: ModelInterface, arr: np.ndarray) -> Screened:
    """The value checks of ``instances_to_batch`` on a numeric batch (n, *input_shape) or
    (n, input_size), every bad row reported and the others kept."""
    if len(arr) == 0:
        return Screened(np.empty((0, *iface.input_shape), np.float32), np.empty(0, np.int64), {})
    rows, problems, _ = value_problems(iface, arr, None)
    good = np.arange(len(rows), dtype=np.int64)
    if problems:
        good = np.setdiff1d(good, np.fromiter(problems, np.int64, len(problems)))
        rows = rows[good]
    return Screened(rows.reshape(len(rows), *iface.input_shape), good, problems)
