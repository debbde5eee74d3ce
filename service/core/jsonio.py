"""JSON bytes in and out: parse with orjson (messages that say where and why), write float32
in its shortest form, and sniff whether a boolean may hide among a body's numbers.

Floats are answered as float32 values written by orjson in their shortest form that reads
back as the same float32 (e.g. 0.1, not 0.10000000149011612).
"""

from __future__ import annotations

from typing import Any

import orjson

from .errors import MalformedJSON

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


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


def json_type(v: Any) -> str:
    """'null', 'a boolean', 'a string', 'an object', 'a list' or 'a number'."""
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


def stringify_keys(messages: Any) -> Any:
    """marshmallow's messages with every key a string (list indices become "3")."""
    if isinstance(messages, dict):
        return {str(k): stringify_keys(v) for k, v in messages.items()}
    return messages
