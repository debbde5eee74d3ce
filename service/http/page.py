"""The web page for browsers: ``static/index.html`` at ``/`` (for ``Accept: text/html``), its
script and style under ``/static/`` (Flask's static folder beside this module). Files in the
package only: no CDN, no network, so it works offline and in the container."""

from __future__ import annotations

from flask import Response, current_app


def index() -> Response:
    """The page; never cached, so a new version of the service shows its new page."""
    resp = current_app.send_static_file("index.html")
    resp.headers["Cache-Control"] = "no-cache"
    return resp
