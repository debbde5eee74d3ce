"""Optional bearer-token authentication of the HTTP front end, as WSGI middleware.

With ``SERVICE_AUTH_TOKEN`` (or ``SERVICE_AUTH_TOKEN_FILE``, e.g. a Kubernetes Secret mounted
as a file) set, every request except the probes, the V1 liveness ``GET /`` and the web
page's static files needs ``Authorization: Bearer <token>``; ``/metrics`` needs it too
(Prometheus sends one with ``authorization.credentials_file``). Otherwise: 401, the usual
JSON error, ``WWW-Authenticate: Bearer``. The comparison takes constant time and the token
appears in no log line, error or repr.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..core.auth import authorized
from .limits import error_response

#: Paths anyone may GET: health probes and the page's files, which hold no data.
OPEN_PATHS = frozenset({"/", "/v2/health/live", "/v2/health/ready"})
OPEN_PREFIXES = ("/static/",)
_REALM = 'Bearer realm="numpy-model-server"'


class BearerAuth:
    """Refuse requests without the right bearer token (401), except the open paths."""

    def __init__(self, app: Callable[..., Iterable[bytes]], token: str) -> None:
        self.app = app
        self._token = token

    def __repr__(self) -> str:
        return "BearerAuth(token=<hidden>)"

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD") and (
                path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)):
            return self.app(environ, start_response)
        given = environ.get("HTTP_AUTHORIZATION", "")
        if authorized(self._token, given):
            return self.app(environ, start_response)
        if given:
            message, challenge = "the bearer token is not valid", \
                _REALM + ', error="invalid_token"'
        else:
            message, challenge = ("this server needs 'Authorization: Bearer <token>' "
                                  "(the token is SERVICE_AUTH_TOKEN's)"), _REALM
        record = environ.get("service.record")
        if record is not None:
            record.endpoint = "unauthorized"
        # Connection: close so an unread body is never read (http/worker.py honours it).
        return error_response(start_response, "401 Unauthorized", message, {},
                              [("WWW-Authenticate", challenge), ("Connection", "close")])
