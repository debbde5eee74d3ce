"""Optional bearer-token auth: in process, then end to end with gunicorn and the batch scorer."""

from __future__ import annotations

import logging

import orjson
import pytest
import requests

from service.batch.cli import main
from service.core.auth import TokenError, client_headers, load_token
from tests.factories import make_classifier, make_regressor, random_images
from tests.service.gunicorn_server import Server

TOKEN = "s3cret-token-0123456789"
GOOD = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(make_app):
    return make_app(auth_token=TOKEN).test_client()


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready", "/",
                                  "/static/app.js"])
def test_probes_and_page_files_need_no_token(client, path):
    assert client.get(path).status_code != 401


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/models"), ("GET", "/v2"), ("GET", "/v2/models/mnist"), ("GET", "/metrics"),
    ("GET", "/openapi.json"), ("POST", "/v1/models/mnist:predict"),
    ("POST", "/v2/models/mnist/infer"), ("POST", "/"), ("POST", "/v2/health/ready"),
])
def test_everything_else_needs_the_token(client, method, path):
    resp = client.open(path, method=method, json={"instances": []})
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert resp.get_json()["error"] and resp.get_json()["details"] == {}

    wrong = client.open(path, method=method, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and 'error="invalid_token"' in \
        wrong.headers["WWW-Authenticate"]
    basic = client.open(path, method=method, headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401


def test_the_right_token_is_served_and_never_echoed(client, caplog):
    caplog.set_level(logging.DEBUG)
    body = {"instances": random_images(1).tolist()}
    resp = client.post("/v1/models/mnist:predict", json=body, headers=GOOD)
    assert resp.status_code == 200
    for path in ("/v1/models", "/metrics", "/openapi.json"):
        assert client.get(path, headers=GOOD).status_code == 200
    bad = client.post("/v1/models/mnist:predict", json={"x": 1}, headers=GOOD)
    assert bad.status_code == 400
    for answer in (resp, bad, client.get("/v1/models", headers={"Authorization": "Bearer x"})):
        assert TOKEN not in answer.get_data(as_text=True)
    assert TOKEN not in caplog.text


def test_token_settings(tmp_path):
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    assert load_token({"SERVICE_AUTH_TOKEN_FILE": str(secret)}) == TOKEN
    assert load_token({"SERVICE_AUTH_TOKEN": f"  {TOKEN} "}) == TOKEN
    assert load_token({}) is None
    assert client_headers({"SERVICE_AUTH_TOKEN": TOKEN}) == GOOD
    assert client_headers({}) == {}
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for env in ({"SERVICE_AUTH_TOKEN": TOKEN, "SERVICE_AUTH_TOKEN_FILE": str(secret)},
                {"SERVICE_AUTH_TOKEN_FILE": str(empty)},
                {"SERVICE_AUTH_TOKEN_FILE": str(tmp_path / "missing")},
                {"SERVICE_AUTH_TOKEN": "short"},
                {"SERVICE_AUTH_TOKEN": TOKEN[:10] + " " + TOKEN[10:]}):
        with pytest.raises(TokenError) as info:
            load_token(env)
        assert TOKEN not in str(info.value) and TOKEN[:10] not in str(info.value)


def test_gunicorn_with_a_token_file_and_the_batch_scorer(tmp_path, monkeypatch, capsys):
    artifacts = tmp_path / "artifacts"
    make_regressor(artifacts)
    make_classifier(artifacts)
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    srv = Server(artifacts, tmp_path, env={"SERVICE_AUTH_TOKEN_FILE": str(secret)})
    try:
        srv.wait_ready()  # the readiness probe needs no token
        body = orjson.dumps({"instances": random_images(2).tolist()})
        url = srv.url + "/v1/models/mnist:predict"
        ctype = {"Content-Type": "application/json"}
        assert requests.post(url, data=body, headers=ctype, timeout=10).status_code == 401
        assert requests.post(url, data=body, headers={**ctype, **GOOD},
                             timeout=10).status_code == 200

        jsonl = tmp_path / "in.jsonl"
        jsonl.write_bytes(b"".join(orjson.dumps(x) + b"\n"
                                   for x in random_images(5).tolist()))
        args = ["--model", "mnist", "--input", str(jsonl), "--url", srv.url, "--no-progress",
                "--retries", "0"]
        monkeypatch.delenv("SERVICE_AUTH_TOKEN", raising=False)
        monkeypatch.delenv("SERVICE_AUTH_TOKEN_FILE", raising=False)
        assert main([*args, "--output", str(tmp_path / "a.jsonl")]) == 1
        assert "401" in capsys.readouterr().err
        monkeypatch.setenv("SERVICE_AUTH_TOKEN_FILE", str(secret))
        assert main([*args, "--output", str(tmp_path / "b.jsonl")]) == 0
        assert len((tmp_path / "b.jsonl").read_text().splitlines()) == 5
    finally:
        srv.stop()
    assert TOKEN not in srv.log.read_text()
