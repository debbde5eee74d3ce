"""The web page's files as the Flask app serves them: ``/`` for browsers only, the static
files, and nothing fetched from elsewhere (it must work offline and in the container)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[3] / "service" / "http" / "static"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_browsers_get_the_page_and_other_clients_liveness(client):
    page = client.get("/", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert b'<script src="/static/app.js"' in page.data
    for accept in (None, "*/*", "application/json"):
        headers = {"Accept": accept} if accept else {}
        assert client.get("/", headers=headers).get_json() == {"status": "alive"}


@pytest.mark.parametrize("name, mimetype", [("app.js", "text/javascript"),
                                            ("style.css", "text/css")])
def test_static_files_are_served(client, name, mimetype):
    resp = client.get(f"/static/{name}")
    assert resp.status_code == 200 and resp.mimetype == mimetype
    assert resp.data == (STATIC / name).read_bytes()
    assert client.get("/static/missing.js").status_code == 404


@pytest.mark.parametrize("name", ["index.html", "app.js", "style.css"])
def test_nothing_is_loaded_from_another_host(name):
    text = (STATIC / name).read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//|url\((https?:)?//|import\s""", text)
    assert "fetch(\"http" not in text and "fetch('http" not in text


def test_the_page_uses_only_the_public_api():
    paths = set(re.findall(r"""["'`](/v[12]/[^"'`$]*)""", (STATIC / "app.js").read_text()))
    assert paths == {"/v1/models", "/v2/models/", "/v1/models/"}
