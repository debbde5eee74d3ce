"""Optional bearer-token authentication: a WSGI middleware for the server, a header for clients.

With ``SERVICE_AUTH_TOKEN`` (or ``SERVICE_AUTH_TOKEN_FILE``, e.g. a Kubernetes Secret mounted
as a file) set, every request except the probes, the V1 liveness ``GET /`` and the web
page's static files needs ``Authorization: Bearer <token>``; ``/metrics`` needs it too
(Prometheus sends one with ``authorization.credentials_file``). Otherwise: 401, the usual
JSON error, ``WWW-Authenticate: Bearer``. The comparison takes constant time and the token
appears in no log line, error or repr.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .limits import error_response

#: Paths anyone may GET: health probes and the page's files, which hold no data.
OPEN_PATHS = frozenset({"/", "/v2/health/live", "/v2/health/ready"})
OPEN_PREFIXES = ("/static/",)
_REALM = 'Bearer realm="numpy-model-server"'


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


class BearerAuth:
    """Refuse requests without the right bearer token (401), except the open paths."""

    def __init__(self, app: Callable[..., Iterable[bytes]], token: str) -> None:
        self.app = app
        self._expected = token.encode()

    def __repr__(self) -> str:
        return "BearerAuth(token=<hidden>)"

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD") and (
                path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)):
            return self.app(environ, start_response)
        given = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, credentials = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
                credentials.strip().encode("latin-1", "replace"), self._expected):
            return self.app(environ, start_response)
        if given:
            message, challenge = "the bearer token is not valid", \
                _REALM + ', error="invalid_token"'
        else:
            message, challenge = ("this server needs 'Authorization: Bearer <token>' "
                                  "(the token is SERVICE_AUTH_TOKEN's)"), _REALM
        labels = environ.get("service.labels")
        if labels is not None:
            labels[3] = "unauthorized"
        # Connection: close so an unread body is never read (service/worker.py honours it).
        return error_response(start_response, "401 Unauthorized", message, {},
                              [("WWW-Authenticate", challenge), ("Connection", "close")])
