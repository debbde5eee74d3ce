"""JSON bytes <-> NumPy: parse with orjson, check structure, convert numbers in one NumPy call.

The fast path does no per-number Python work: ``np.asarray`` converts a whole batch and its
dtype and shape tell whether every value was a number of the right layout; the float32 min
and max then settle finiteness and range. Only when something is wrong do the slow paths
run: ``_locate_*`` walk the values to point at the offending instance and position, and
``Predictor.find_problems`` (through ``Signature.find_problems``) decides and words value
problems. The batch scorer screens its rows with the same functions (``screen_instances``,
``screen_rows``), which report every bad row instead of refusing the whole batch.

Floats are answered as float32 values written by orjson in their shortest form that reads
back as the same float32 (e.g. 0.1, not 0.10000000149011612).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from marshmallow import Schema, ValidationError

from .errors import InvalidRequest, MalformedJSON
from .schemas import tabular_instance_schema
from .signature import Signature

#: How many bad instances (and positions per instance) error details list.
MAX_DETAILED = 10

#: V2 datatypes this service converts, and their NumPy dtypes (little-endian for binary data).
NUMERIC_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(code).newbyteorder("<") for name, code in [
        ("UINT8", "u1"), ("UINT16", "u2"), ("UINT32", "u4"), ("UINT64", "u8"),
        ("INT8", "i1"), ("INT16", "i2"), ("INT32", "i4"), ("INT64", "i8"),
        ("FP16", "f2"), ("FP32", "f4"), ("FP64", "f8")]
}

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


# -- JSON ------------------------------------------------------------------------------------
def loads(body: bytes, record: bool = False) -> Any:
    """Parse a request body; MalformedJSON says where and why (NaN/Infinity included).

    ``record``: the body is one JSON Lines record, so the message gives only the column.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(_json_message(body, exc, record),
                            {"body": {"line": exc.lineno, "column": exc.colno,
                                      "position": exc.pos}}) from None


def _json_message(body: bytes, exc: orjson.JSONDecodeError, record: bool = False) -> str:
    at = body[exc.pos:exc.pos + 9].lstrip(b"-+")
    where = f"column {exc.colno}" if record else f"line {exc.lineno} column {exc.colno}"
    if at.startswith((b"NaN", b"Infinity", b"inf", b"nan")):
        return (f"malformed JSON at {where}: NaN and Infinity are not JSON numbers and "
                "not valid inputs; send finite numbers")
    if "infinity" in exc.msg:
        return (f"malformed JSON at {where}: a number is too large (e.g. 1e999); send "
                "finite numbers")
    if not body.strip():
        return "malformed JSON: the request body is empty"
    return f"malformed JSON at {where}: {exc.msg}"


def dumps(obj: Any) -> bytes:
    """Serialise an answer; NumPy arrays and scalars are written directly (see module doc)."""
    return orjson.dumps(obj, option=_JSON_OPTIONS)


def load_envelope(schema: Schema, obj: Any) -> dict[str, Any]:
    """Validate the request structure with marshmallow; InvalidRequest with its messages."""
    if not isinstance(obj, dict):
        raise InvalidRequest(f"the request body must be a JSON object, not "
                             f"{_json_type(obj)}", {"_schema": ["Invalid input type."]})
    try:
        return schema.load(obj)
    except ValidationError as exc:
        details = _stringify_keys(exc.messages)
        raise InvalidRequest(f"invalid request: {first_message(details)}", details) from None


def may_hold_booleans(body: bytes, envelope: Any) -> bool:
    """True if a boolean may hide among the numbers of ``body``, where NumPy would silently
    turn it into 1 or 0, so the slow exact check must run.

    ``envelope`` is the parsed body minus its numeric payload. Numbers never contain the
    letters u or l, so a memchr scan for them (~15 µs for an 800 KB body) usually settles
    it; otherwise the true/false tokens of body and envelope are counted.
    """
    if not (_has_token(body, b"u", b"true", 2) or _has_token(body, b"l", b"false", 2)):
        return False
    header = orjson.dumps(envelope)
    return (body.count(b"true") > header.count(b"true")
            or body.count(b"false") > header.count(b"false"))


def _has_token(body: bytes, letter: bytes, token: bytes, at: int) -> bool:
    """Whether ``token`` occurs in body, found through its rare ``letter`` (index ``at``)."""
    i = body.find(letter)
    while i != -1:
        if body[i - at:i - at + len(token)] == token:
            return True
        i = body.find(letter, i + 1)
    return False


# -- KServe V1 instances -----------------------------------------------------------------------
def instances_to_batch(sig: Signature, instances: list[Any], check_booleans: bool) -> np.ndarray:
    """Checked float32 batch of shape (n, *input_shape) from V1 ``instances``.

    Raises InvalidRequest with details keyed ``instances -> index -> field/position``.
    """
    values: Sequence[Any] = instances
    if sig.features is not None:
        values = _named_to_rows(sig, instances)
    arr = None if check_booleans else _as_numeric(values, sig)
    if arr is None:
        details, bad = _locate_instance_errors(sig, instances)
        if details:
            raise _invalid(details, bad, len(instances), ("instances",))
        arr = _as_numeric(values, sig)
        if arr is None:  # every instance is fine alone: they mix layouts
            raise InvalidRequest("all instances of a request must have the same layout; "
                                 f"each must be {sig.describe_instance()}",
                                 {"instances": ["Instances mix layouts."]})
    return _checked(sig, arr, ("instances",))


def _named_to_rows(sig: Signature, instances: list[Any]) -> list[Any]:
    """Objects keyed by feature name become rows in manifest order; lists pass through."""
    features = sig.features or ()
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


def _as_numeric(values: Sequence[Any], sig: Signature) -> np.ndarray | None:
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
    if arr.shape[1:] != sig.input_shape and arr.shape[1:] != (sig.input_size,):
        return None
    return arr


def _locate_instance_errors(sig: Signature,
                            instances: list[Any]) -> tuple[dict[str, Any], int]:
    """Slow path: ({index: messages} of the first MAX_DETAILED bad instances, how many)."""
    details: dict[str, Any] = {}
    bad = 0
    schema = _instance_schema(sig)
    for i, inst in enumerate(instances):
        problem = _instance_problem(sig, schema, inst)
        if problem:
            bad += 1
            if len(details) < MAX_DETAILED:
                details[str(i)] = problem
    return details, bad


def _instance_schema(sig: Signature) -> Schema | None:
    return tabular_instance_schema(sig.features) if sig.features else None


def _instance_problem(sig: Signature, schema: Schema | None, inst: Any) -> Any:
    """The messages for one V1 instance's structure and types, or None if it is fine."""
    if type(inst) is dict and schema is not None:
        try:
            schema.load(inst)
        except ValidationError as exc:
            return _stringify_keys(exc.messages)
        return None
    if type(inst) is list:
        flat = (sig.input_size,)
        shape = flat if len(inst) == sig.input_size and (
            len(sig.input_shape) == 1 or not inst or type(inst[0]) is not list) \
            else sig.input_shape
        return _nested_errors(inst, shape, top=True, sig=sig)
    return [f"Expected {sig.describe_instance()}; got {_json_type(inst)}."]


def _nested_errors(value: Any, shape: tuple[int, ...], top: bool = False,
                   sig: Signature | None = None) -> Any:
    """Messages for nested lists ``value`` that should be numbers of ``shape``, or None."""
    if type(value) is not list or len(value) != shape[0]:
        if top and sig is not None:
            got = f"a list of {len(value)} items" if type(value) is list else _json_type(value)
            return [f"Expected {sig.describe_instance()}; got {got}."]
        got = f"{len(value)} items" if type(value) is list else _json_type(value)
        return [f"Expected a list of {shape[0]} "
                f"{'numbers' if len(shape) == 1 else 'lists'}; got {got}."]
    errors: dict[str, Any] = {}
    for j, v in enumerate(value):
        if len(shape) == 1:
            if type(v) is not int and type(v) is not float:
                errors[str(j)] = [_not_a_number(v)]
        else:
            sub = _nested_errors(v, shape[1:])
            if sub:
                errors[str(j)] = sub
        if len(errors) >= MAX_DETAILED:
            break
    return errors or None


def _invalid(details: dict[str, Any], total: int, n: int,
             path: tuple[str, ...]) -> InvalidRequest:
    """InvalidRequest for ``total`` bad instances of ``n``, details nested under ``path``."""
    first = next(iter(details))
    shown = "" if total <= len(details) else f" (details for the first {len(details)})"
    nested: dict[str, Any] = details
    for key in reversed(path):
        nested = {key: nested}
    return InvalidRequest(f"{total} of {n} instances are invalid{shown}; first: instance "
                          f"{first}: {first_message(details[first])}", nested)


# -- the batch scorer: every bad row named, the good ones kept ---------------------------------
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


def screen_instances(sig: Signature, instances: list[Any], check_booleans: bool) -> Screened:
    """``instances_to_batch`` for a batch scorer: the same checks, but every bad instance is
    reported (worded as the service words it for that instance alone) and the others are
    kept. Each instance stands alone, so flat and nested layouts may be mixed."""
    values: Sequence[Any] = instances
    if sig.features is not None:
        values = _named_to_rows(sig, instances)
    arr = None if check_booleans else _as_numeric(values, sig)
    problems: dict[int, Any] = {}
    good = list(range(len(instances)))
    if arr is None:
        schema = _instance_schema(sig)
        good = []
        for i, inst in enumerate(instances):
            problem = _instance_problem(sig, schema, inst)
            if problem:
                problems[i] = problem
            else:
                good.append(i)
        values = [instances[i] for i in good]
        if sig.features is not None:
            values = _named_to_rows(sig, values)
        arr = _as_numeric(values, sig) if values else np.empty((0, sig.input_size))
        if arr is None:  # every instance is fine alone: they mix layouts
            arr = np.concatenate([_alone(sig, v).reshape(1, sig.input_size) for v in values])
    screened = screen_rows(sig, arr)
    for k in screened.problems:
        # quote the value as it reads alone: 256, not 256.0 because another instance has 0.5
        problems[good[k]] = _value_problems(sig, _alone(sig, values[k]), None)[1][0]
    index = np.asarray(good, np.int64)
    return Screened(screened.x, index[screened.good], dict(sorted(problems.items())))


def _alone(sig: Signature, value: Any) -> np.ndarray:
    """One instance that passed the structure checks, as a numeric batch of one."""
    arr = _as_numeric([value], sig)
    if arr is None:
        raise ValueError("instance did not pass the structure checks")
    return arr


def screen_rows(sig: Signature, arr: np.ndarray) -> Screened:
    """The value checks of ``instances_to_batch`` on a numeric batch (n, *input_shape) or
    (n, input_size), every bad row reported and the others kept."""
    if len(arr) == 0:
        return Screened(np.empty((0, *sig.input_shape), np.float32), np.empty(0, np.int64), {})
    rows, problems, _ = _value_problems(sig, arr, None)
    good = np.arange(len(rows), dtype=np.int64)
    if problems:
        good = np.setdiff1d(good, np.fromiter(problems, np.int64, len(problems)))
        rows = rows[good]
    return Screened(rows.reshape(len(rows), *sig.input_shape), good, problems)


# -- values ----------------------------------------------------------------------------------
def _checked(sig: Signature, arr: np.ndarray, path: tuple[str, ...]) -> np.ndarray:
    """Finiteness and range checks, then float32 (n, *input_shape); InvalidRequest naming
    the first MAX_DETAILED bad rows otherwise."""
    rows, details, bad = _value_problems(sig, arr, MAX_DETAILED)
    if details:
        raise _invalid({str(i): d for i, d in details.items()}, bad, len(rows), path)
    return rows.reshape(rows.shape[0], *sig.input_shape)


def _value_problems(sig: Signature, arr: np.ndarray, limit: int | None,
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
        rows = arr.reshape(n, sig.input_size).astype(np.float32, order="C")  # see find_problems
    low, high = rows.min(), rows.max()
    rng = sig.value_range
    if np.isfinite(low) and np.isfinite(high) and (
            rng is None or (low >= rng[0] and high <= rng[1])):
        return rows, {}, 0
    rows, problems = sig.find_problems(arr)
    flat = arr.reshape(len(rows), -1)
    details: dict[int, Any] = {}
    for i in sorted(problems)[:limit]:
        msgs: Any = problems[i]
        if sig.features is not None:  # point at the field, not just the row
            bad = ~np.isfinite(rows[i])
            if sig.value_range is not None:
                bad |= (rows[i] < sig.value_range[0]) | (rows[i] > sig.value_range[1])
            msgs = {sig.features[j]: [_value_message(flat[i, j], sig)]
                    for j in np.flatnonzero(bad)} or msgs
        details[i] = msgs
    return rows, details, len(problems)


def _value_message(value: Any, sig: Signature) -> str:
    v = value.item() if hasattr(value, "item") else value
    if sig.value_range is not None and np.isfinite(np.float32(v)):
        low, high = sig.value_range
        return f"{v!r} is outside the allowed range [{low:g}, {high:g}]."
    return (f"{v!r} is not allowed: NaN, Infinity and numbers beyond float32 range are not "
            "valid inputs.")


# -- Open Inference Protocol tensors ---------------------------------------------------------
def tensor_to_batch(sig: Signature, tensor: dict[str, Any], index: int, raw: bytes | None,
                    check_booleans: bool, max_instances: int) -> np.ndarray:
    """Checked float32 batch (n, *input_shape) from one V2 input tensor.

    ``raw`` is its binary data (binary tensor extension) or None for JSON ``data``.
    """
    def fail(field: str, message: str) -> InvalidRequest:
        return InvalidRequest(f"invalid input {tensor.get('name')!r}: {message}",
                              {"inputs": {str(index): {field: [message]}}})

    if tensor["name"] != sig.input_name:
        raise fail("name", f"Unknown input {tensor['name']!r}; this model takes one input "
                           f"named {sig.input_name!r}.")
    dtype = NUMERIC_DTYPES.get(tensor["datatype"])
    if dtype is None:
        raise fail("datatype", f"Datatype {tensor['datatype']} is not supported; send "
                               "FP32, FP64, FP16, INT8-64 or UINT8-64 numbers.")
    shape = tuple(tensor["shape"])
    if shape[1:] != sig.input_shape and shape[1:] != (sig.input_size,):
        want = [-1, *sig.input_shape]
        raise fail("shape", f"Shape {list(shape)} does not fit this model: it takes "
                            f"{want}" + (f" or [-1, {sig.input_size}]"
                                         if len(sig.input_shape) > 1 else "") + ".")
    n = shape[0]
    if n == 0:
        raise fail("shape", "No instances: the batch dimension is 0.")
    if n > max_instances:
        raise fail("shape", f"Too many instances: {n} is more than the limit of "
                            f"{max_instances} (SERVICE_MAX_INSTANCES); split the batch.")
    count = int(np.prod(shape))
    if raw is not None:
        if len(raw) != count * dtype.itemsize:
            raise fail("parameters", f"binary_data_size is {len(raw)} bytes; shape "
                                     f"{list(shape)} of {tensor['datatype']} needs "
                                     f"{count * dtype.itemsize}.")
        arr = np.frombuffer(raw, dtype=dtype)
    else:
        if "data" not in tensor:
            raise fail("data", "Missing data for required field (or send it as binary data "
                               "with parameters.binary_data_size).")
        data = tensor["data"]
        arr = _tensor_data(data, check_booleans)
        if arr is None:
            errors = _data_errors(data)
            if errors:
                raise InvalidRequest(f"invalid input {tensor['name']!r}: data must hold "
                                     "only numbers in regular nested lists",
                                     {"inputs": {str(index): {"data": errors}}})
            arr = _tensor_data(data, False)
        if arr is None or arr.size != count:
            got = "ragged lists" if arr is None else f"{arr.size} values"
            raise fail("data", f"Data has {got}; shape {list(shape)} needs {count} values.")
        if dtype.kind in "iu":
            if arr.dtype.kind == "f":
                raise fail("data", f"Datatype {tensor['datatype']} needs integers; the data "
                                   "has non-integer numbers (declare FP32 or FP64).")
            info = np.iinfo(dtype)
            if arr.size and (arr.min() < info.min or arr.max() > info.max):
                raise fail("data", f"Data values do not fit {tensor['datatype']} "
                                   f"([{info.min}, {info.max}]).")
        elif dtype != np.float64:
            with np.errstate(over="ignore"):
                arr = arr.astype(dtype)  # overflow -> inf, reported by the value check
    return _checked(sig, arr.reshape(shape), ("inputs", str(index), "data"))


def _tensor_data(data: Any, check_booleans: bool) -> np.ndarray | None:
    """``data`` as a numeric array, or None if it holds anything but numbers (or may)."""
    if check_booleans or type(data) is not list:
        return None
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError):
        return None
    return arr if arr.dtype.kind in "iuf" else None


def _data_errors(data: Any) -> Any:
    """Slow path: positions of non-numbers in nested ``data`` (first MAX_DETAILED)."""
    if type(data) is not list:
        return [f"Not a valid list; got {_json_type(data)}."]
    errors: dict[str, Any] = {}
    depth = None
    for j, v in enumerate(data):
        if type(v) is list:
            sub = _data_errors(v)
            if depth == "number":
                sub = ["Expected a number here (ragged nesting)."]
            depth = "list"
        else:
            sub = [_not_a_number(v)] if type(v) is not int and type(v) is not float else None
            if depth == "list" and sub is None:
                sub = ["Expected a list here (ragged nesting)."]
            depth = "number"
        if sub:
            errors[str(j)] = sub
            if len(errors) >= MAX_DETAILED:
                break
    return errors or None


# -- helpers ---------------------------------------------------------------------------------
def _not_a_number(v: Any) -> str:
    if type(v) is bool:
        return "Not a valid number: booleans are not numbers."
    if v is None:
        return "Not a valid number: got null."
    return f"Not a valid number; got {_json_type(v)}."


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if type(v) is bool:
        return "a boolean"
    if type(v) is str:
        return "a string"
    if type(v) is dict:
        return "an object"
    if type(v) is list:
        return "a list"
    return "a number"


def _stringify_keys(messages: Any) -> Any:
    if isinstance(messages, dict):
        return {str(k): _stringify_keys(v) for k, v in messages.items()}
    return messages


def first_message(details: Any, path: str = "") -> str:
    """'instances.3.RM: Not a valid number.' for the first leaf of nested details."""
    if isinstance(details, dict) and details:
        k = next(iter(details))
        return first_message(details[k], f"{path}.{k}" if path else str(k))
    if isinstance(details, list) and details:
        return f"{path}: {details[0]}" if path else str(details[0])
    return path or "invalid"
