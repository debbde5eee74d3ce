"""Operations: readiness, 503s, metrics, OpenAPI, JSON logs, and no 5xx for client errors."""

from __future__ import annotations

import json

import pytest
from openapi_spec_validator import validate

from service.app import create_app
from tests.factories import make_classifier, random_housing
from tests.service.core.test_registry import corrupt


def test_empty_registry_starts_and_is_not_ready(tmp_path):
    client = create_app({"artifacts_dir": tmp_path / "none", "log_level": "WARNING"}
                        ).test_client()
    assert client.get("/v2/health/live").status_code == 200
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503 and "no models" in ready.get_json()["error"]
    assert client.get("/v1/models").get_json() == {"models": []}
    assert client.get("/openapi.json").status_code == 200


def test_broken_model_is_503_and_others_keep_serving(artifacts, make_app):
    corrupt(artifacts / "mnist" / "1")
    make_classifier(artifacts, name="digits")  # a healthy second classifier
    client = make_app().test_client()
    for url in ("/v1/models/mnist", "/v2/models/mnist/ready", "/v2/models/mnist/versions/1"):
        resp = client.get(url)
        assert resp.status_code == 503, url
        assert "checksum" in resp.get_json()["error"]
    resp = client.post("/v1/models/mnist:predict", json={"instances": [[0] * 784]})
    assert resp.status_code == 503 and resp.get_json()["details"]["reason"]
    assert client.get("/v2/health/ready").status_code == 200
    listing = {m["name"]: m for m in client.get("/v1/models").get_json()["models"]}
    assert listing["mnist"]["ready"] is False
    assert "checksum" in listing["mnist"]["versions"][0]["reason"]
    ok = client.post("/v1/models/housing:predict",
                     json={"instances": random_housing(1).tolist()})
    assert ok.status_code == 200
    assert client.post("/v1/models/digits:predict",
                       json={"instances": [[0] * 784]}).status_code == 200


def test_metrics_count_requests_per_model_version_and_status(client):
    for _ in range(3):
        client.post("/v1/models/housing:predict", json={"instances": random_housing(2).tolist()})
    client.post("/v1/models/housing:predict", json={"instances": []})
    text = client.get("/metrics").get_data(as_text=True)
    assert ('model_server_requests_total{endpoint="v1.predict",model="housing",status="200",'
            'version="1"} 3.0') in text
    assert 'status="400"' in text
    assert 'model_server_instances_total{model="housing",version="1"} 6.0' in text
    assert "model_server_request_duration_seconds_bucket" in text


def test_unknown_model_names_do_not_become_metric_labels(client):
    client.post("/v1/models/attacker-chosen:predict", json={"instances": [[1]]})
    assert "attacker-chosen" not in client.get("/metrics").get_data(as_text=True)


def test_openapi_is_valid_and_covers_every_route(app, client):
    spec = client.get("/openapi.json").get_json()
    validate(spec)
    documented = set(spec["paths"])
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<model:name>", "{name}").replace("<version:version>",
                                                                   "{version}")
        assert path in documented, path
    schemas = spec["components"]["schemas"]
    assert set(schemas["housing_instance"]["oneOf"][0]["required"]) >= {"RM", "LSTAT"}
    assert schemas["mnist_instance"]["oneOf"][0]["maxItems"] == 784
    assert "ErrorResponse" in schemas and "InferenceRequest" in schemas


def test_one_json_log_line_per_request(make_app, capfd):
    client = make_app(log_level="INFO").test_client()
    capfd.readouterr()
    client.post("/v1/models/housing:predict", json={"instances": random_housing(2).tolist()},
                headers={"X-Request-ID": "req-7"})
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line]
    access = [rec for rec in lines if rec["logger"] == "service.access"]
    assert len(access) == 1
    rec = access[0]
    assert rec["request_id"] == "req-7" and rec["status"] == 200
    assert rec["model"] == "housing" and rec["version"] == "1" and rec["n_instances"] == 2
    assert rec["method"] == "POST" and rec["path"] == "/v1/models/housing:predict"
    assert rec["duration_ms"] > 0 and rec["level"] == "INFO" and "ts" in rec


def test_unexpected_error_is_500_json_with_request_id_and_logged(make_app, capfd):
    app = make_app(log_level="INFO")

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    resp = app.test_client().get("/boom", headers={"X-Request-ID": "r-500"})
    assert resp.status_code == 500
    body = resp.get_json()
    assert body["details"] == {"request_id": "r-500"} and "secret" not in body["error"]
    out = capfd.readouterr().out
    logged = [json.loads(line) for line in out.splitlines() if "unhandled" in line]
    assert logged and "secret internals" in logged[0]["traceback"]


@pytest.mark.parametrize("body", [
    b"\xff\xfe", b"{" * 10000, b'{"instances": [' + b"[" * 2000 + b"]" * 2000 + b"]}",
    b'{"instances": [[1e308, -1e308, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]]}',
    b'{"instances": [{"CRIM": {"$ne": 1}}]}', b'{"instances": [[]]}', b'{"instances": [[[]]]}',
    b'{"instances": [18446744073709551616]}', b'{"instances": ' + b"[0]," * 5 + b"}",
])
def test_odd_payloads_never_cause_5xx(client, body):
    for url in ("/v1/models/housing:predict", "/v1/models/mnist:predict",
                "/v2/models/mnist/infer", "/v2/models/housing/infer"):
        resp = client.post(url, data=body, content_type="application/json")
        assert 400 <= resp.status_code < 500, (url, body[:40], resp.get_data()[:200])
