"""Request bodies on the wire: content-type and content-encoding rules, reading the bytes.

Accepted: ``application/json`` (any parameters), any ``application/*+json``, and a missing
Content-Type (tritonclient and many scripts send none). For V2 binary tensor data
(``Inference-Header-Content-Length``) also ``application/octet-stream``; on V1 ``:predict``
also ``image/*`` (one picture, checked against its bytes by ``service.imaging``). Anything else,
including curl's default ``application/x-www-form-urlencoded``, is a 415 that says what to
send. Compressed bodies are refused (415) rather than misread.
"""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import UnsupportedMediaType

_HINT = ("send the body as JSON with 'Content-Type: application/json' "
         "(curl: --json @file or -H 'Content-Type: application/json')")


def read_body(binary_ok: bool = False, picture_ok: bool = False) -> bytes:
    """The raw body after the content-type checks; 413 comes from Flask's size limit."""
    headers = request.headers
    ctype = headers.get("Content-Type")
    if ctype:
        mime = ctype.split(";", 1)[0].strip().lower()
        if not (mime == "application/json" or (mime.startswith("application/")
                                                 and mime.endswith("+json"))
                or (binary_ok and mime == "application/octet-stream")
                or (picture_ok and mime.startswith("image/"))):
            raise UnsupportedMediaType(f"Content-Type {mime!r} is not supported; {_HINT}",
                                       {"content_type": mime})
    encoding = headers.get("Content-Encoding")
    if encoding and encoding.strip().lower() != "identity":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; send "
                                   "the body uncompressed", {"content_encoding": encoding})
    environ = request.environ
    length = environ.get("CONTENT_LENGTH")
    if length and length.isdigit():
        # Read exactly Content-Length bytes from the server's stream: a third of the cost
        # of Werkzeug's wrapped stream for small bodies. The size limit still applies.
        limit = request.max_content_length
        if limit is not None and int(length) > limit:
            raise RequestEntityTooLarge()
        return environ["wsgi.input"].read(int(length))
    return _read_chunked(environ["wsgi.input"], request.max_content_length)


def _read_chunked(stream: Any, limit: int | None) -> bytes:
    """A body without Content-Length (chunked), refused once it passes ``limit`` bytes.

    Werkzeug applies MAX_CONTENT_LENGTH only to a declared Content-Length, so a chunked
    body would otherwise be read whole, however large.
    """
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = stream.read(1 << 16)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if limit is not None and total > limit:
            raise RequestEntityTooLarge()
        chunks.append(chunk)
