"""The bearer token that guards the service, read once from the environment, and the one
constant-time comparison every front end uses (HTTP's ``Authorization`` header, gRPC's
``authorization`` metadata)."""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from pathlib import Path


def read_token(env: Mapping[str, str] | None = None) -> str | None:
    """``SERVICE_AUTH_TOKEN``, else the stripped content of the file ``SERVICE_AUTH_TOKEN_FILE``
    names (a mounted secret); None (no auth) when neither is set or the token is empty."""
    env = os.environ if env is None else env
    token = env.get("SERVICE_AUTH_TOKEN", "").strip()
    if not token and env.get("SERVICE_AUTH_TOKEN_FILE", "").strip():
        token = Path(env["SERVICE_AUTH_TOKEN_FILE"].strip()).read_text().strip()
    return token or None


def authorized(token: str, header: str | None) -> bool:
    """Whether ``header`` is ``Bearer <token>`` (the scheme in any case, RFC 7235), the
    token compared in constant time."""
    scheme, _, credentials = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())
