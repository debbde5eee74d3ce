"""KServe V1 ``instances`` to a checked NumPy batch, in one NumPy conversion when all is well.

The fast path does no per-number Python work: ``np.asarray`` converts the whole batch and
its dtype and shape tell whether every value was a number of the right layout. Only when
something is wrong do the slow paths walk the values to point at the offending instance,
field and position. Value checks (finiteness, range) are ``values.checked``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
from marshmallow import Schema, ValidationError

from model.interface import ModelInterface

from .errors import InvalidRequest
from .jsonio import json_type, stringify_keys
from .schemas import tabular_instance_schema
from .signature import describe_instance
from .values import MAX_DETAILED, checked, invalid


def instances_to_batch(iface: ModelInterface, instances: list[Any],
                       check_booleans: bool) -> np.ndarray:
    """Checked float32 batch of shape (n, *input_shape) from V1 ``instances``.

    Raises InvalidRequest with details keyed ``instances -> index -> field/position``.
    """
    values: Sequence[Any] = instances
    if iface.features is not None:
        values = named_to_rows(iface, instances)
    arr = None if check_booleans else as_numeric(values, iface)
    if arr is None:
        details, bad = _locate_instance_errors(iface, instances)
        if details:
            raise invalid(details, bad, len(instances), ("instances",))
        arr = as_numeric(values, iface)
        if arr is None:  # every instance is fine alone: they mix layouts
            raise InvalidRequest("all instances of a request must have the same layout; "
                                 f"each must be {describe_instance(iface)}",
                                 {"instances": ["Instances mix layouts."]})
    return checked(iface, arr, ("instances",))


def named_to_rows(iface: ModelInterface, instances: list[Any]) -> list[Any]:
    """Objects keyed by feature name become rows in manifest order; lists pass through."""
    features = iface.features or ()
    wanted = set(features)
    pick = operator.itemgetter(*features) if len(features) > 1 \
        else (lambda d: (d[features[0]],))
    rows: list[Any] = []
    for inst in instances:
        if type(inst) is dict:
            if inst.keys() != wanted:
                return instances  # let the checks below name the missing/unknown fields
            rows.append(pick(inst))
        else:
            rows.append(inst)
    return rows


def as_numeric(values: Sequence[Any], iface: ModelInterface) -> np.ndarray | None:
    """One NumPy conversion; None unless every value is a number in the instance layout.

    (``array.array`` and ``np.fromiter`` were measured too: the first is slower on the
    ints orjson makes, the second silently truncates floats and parses strings.)
    """
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError):
        return None  # ragged nesting
    if arr.dtype.kind not in "iuf" or arr.ndim < 1:
        return None
    if arr.shape[1:] != iface.input_shape and arr.shape[1:] != (iface.input_size,):
        return None
    return arr


def _locate_instance_errors(iface: ModelInterface,
                            instances: list[Any]) -> tuple[dict[str, Any], int]:
    """Slow path: ({index: messages} of the first MAX_DETAILED bad instances, how many)."""
    details: dict[str, Any] = {}
    bad = 0
    schema = instance_schema(iface)
    for i, inst in enumerate(instances):
        problem = instance_problem(iface, schema, inst)
        if problem:
            bad += 1
            if len(details) < MAX_DETAILED:
                details[str(i)] = problem
    return details, bad


def instance_schema(iface: ModelInterface) -> Schema | None:
    """The marshmallow schema of one named-feature instance (tabular models), else None."""
    return tabular_instance_schema(iface.features) if iface.features else None


def instance_problem(iface: ModelInterface, schema: Schema | None, inst: Any) -> Any:
    """The messages for one V1 instance's structure and types, or None if it is fine."""
    if type(inst) is dict and schema is not None:
        try:
            schema.load(inst)
        except ValidationError as exc:
            return stringify_keys(exc.messages)
        return None
    if type(inst) is list:
        flat = (iface.input_size,)
        shape = flat if len(inst) == iface.input_size and (
            len(iface.input_shape) == 1 or not inst or type(inst[0]) is not list) \
            else iface.input_shape
        return _nested_errors(inst, shape, top=True, iface=iface)
    return [f"Expected {describe_instance(iface)}; got {json_type(inst)}."]


def _nested_errors(value: Any, shape: tuple[int, ...], top: bool = False,
                   iface: ModelInterface | None = None) -> Any:
    """Messages for nested lists ``value`` that should be numbers of ``shape``, or None."""
    if type(value) is not list or len(value) != shape[0]:
        if top and iface is not None:
            got = f"a list of {len(value)} items" if type(value) is list else json_type(value)
            return [f"Expected {describe_instance(iface)}; got {got}."]
        got = f"{len(value)} items" if type(value) is list else json_type(value)
        return [f"Expected a list of {shape[0]} "
                f"{'numbers' if len(shape) == 1 else 'lists'}; got {got}."]
    errors: dict[str, Any] = {}
    for j, v in enumerate(value):
        if len(shape) == 1:
            if type(v) is not int and type(v) is not float:
                errors[str(j)] = [not_a_number(v)]
        else:
            sub = _nested_errors(v, shape[1:])
            if sub:
                errors[str(j)] = sub
        if len(errors) >= MAX_DETAILED:
            break
    return errors or None


def not_a_number(v: Any) -> str:
    """The message for a non-number where a number belongs."""
    if type(v) is bool:
        return "Not a valid number: booleans are not numbers."
    if v is None:
        return "Not a valid number: got null."
    return f"Not a valid number; got {json_type(v)}."
