"""The service's optional bearer token: where it is configured, and the header a client sends.

Shared by every front end (the HTTP middleware, the batch scorer's remote mode, gunicorn's
start-up check); the token never appears in a message, log line or repr.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from pathlib import Path


class TokenError(ValueError):
    """The token settings cannot be used; the message never contains the token."""


def load_token(env: Mapping[str, str] | None = None) -> str | None:
    """The configured token, from SERVICE_AUTH_TOKEN or the file SERVICE_AUTH_TOKEN_FILE
    names (surrounding whitespace dropped); None when neither is set."""
    env = os.environ if env is None else env
    value = env.get("SERVICE_AUTH_TOKEN", "")
    path = env.get("SERVICE_AUTH_TOKEN_FILE", "").strip()
    if value and path:
        raise TokenError("set SERVICE_AUTH_TOKEN or SERVICE_AUTH_TOKEN_FILE, not both")
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenError(f"SERVICE_AUTH_TOKEN_FILE {path!r} cannot be read "
                             f"({type(exc).__name__})") from None
    value = value.strip()
    if not value:
        if path:
            raise TokenError(f"SERVICE_AUTH_TOKEN_FILE {path!r} is empty")
        return None
    if len(value) < 16 or not all(0x21 <= ord(c) <= 0x7E for c in value):
        raise TokenError("the auth token must be at least 16 printable ASCII characters "
                         "without spaces")
    return value


def client_headers(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{"Authorization": "Bearer <token>"}`` for a client, or {} when no token is set."""
    token = load_token(env)
    return {"Authorization": f"Bearer {token}"} if token else {}


def authorized(token: str, header: str | None) -> bool:
    """Whether ``header`` is ``Bearer <token>`` (the scheme in any case, RFC 7235), the
    token compared in constant time: the one check of HTTP's ``Authorization`` header and
    gRPC's ``authorization`` metadata."""
    scheme, _, credentials = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode("utf-8", "replace"), token.encode())
