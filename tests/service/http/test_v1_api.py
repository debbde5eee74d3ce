"""KServe V1 / TF Serving routes through the Flask test client: answers and every error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model import Predictor
from service.core.schemas import ErrorResponse, V1ModelList, V1ModelStatus, V1PredictResponse
from tests.factories import HOUSING_FEATURES, random_housing, random_images

PREDICT = "/v1/models/{}:predict"


def post(client, model, body, version=None, **kwargs):
    url = (f"/v1/models/{model}/versions/{version}:predict" if version
           else PREDICT.format(model))
    if isinstance(body, (bytes, str)):
        kwargs.setdefault("content_type", "application/json")
        return client.post(url, data=body, **kwargs)
    return client.post(url, json=body, **kwargs)


def assert_error(resp, status):
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert ErrorResponse().validate(body) == {}
    assert body["error"]
    return body


# -- answers ---------------------------------------------------------------------------------
def test_housing_predictions_equal_the_predictor(client, artifacts):
    rows = random_housing(5, seed=3)
    resp = post(client, "housing", {"instances": rows.tolist()})
    assert resp.status_code == 200
    body = resp.get_json()
    assert V1PredictResponse().validate(body) == {}
    assert body["model_version"] == "1"
    expected = Predictor.from_artifact(artifacts / "housing" / "1").predict(rows)
    # orjson writes float32 values in shortest form: they read back as the same float32
    np.testing.assert_array_equal(np.asarray(body["predictions"], dtype=np.float32), expected)


def test_housing_accepts_named_objects_in_any_key_order(client):
    rows = random_housing(2, seed=1)
    named = [dict(reversed(list(zip(HOUSING_FEATURES, r.tolist(), strict=True))))
             for r in rows]
    by_name = post(client, "housing", {"instances": named}).get_json()["predictions"]
    by_list = post(client, "housing", {"instances": rows.tolist()}).get_json()["predictions"]
    mixed = post(client, "housing", {"instances": [named[0], rows[1].tolist()]})
    assert by_name == by_list == mixed.get_json()["predictions"]


@pytest.mark.parametrize("layout", ["flat", "nested"])
def test_mnist_predictions(client, artifacts, layout):
    images = random_images(3, seed=2)
    instances = images.reshape(3, 784) if layout == "flat" else images
    resp = post(client, "mnist", {"instances": instances.tolist()})
    assert resp.status_code == 200
    preds = resp.get_json()["predictions"]
    expected = Predictor.from_artifact(artifacts / "mnist" / "1").predict(images)
    got = np.asarray([p["probabilities"] for p in preds], dtype=np.float32)
    np.testing.assert_array_equal(got, expected)
    assert [p["label"] for p in preds] == expected.argmax(axis=1).tolist()


def test_float_pixels_and_signature_name_are_accepted(client):
    images = random_images(1).astype(float) + 0.5
    body = {"instances": images.tolist(), "signature_name": "serving_default"}
    assert post(client, "mnist", body).status_code == 200


def test_named_version_and_model_status(client, artifacts):
    assert post(client, "housing", {"instances": random_housing(1).tolist()},
                version="1").get_json()["model_version"] == "1"
    status = client.get("/v1/models/housing").get_json()
    assert V1ModelStatus().validate(status) == {}
    assert status["name"] == "housing" and status["ready"] is True
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert client.get("/v1/models/housing/versions/1").get_json()["ready"] is True
    listing = client.get("/v1/models").get_json()
    assert V1ModelList().validate(listing) == {}
    assert [m["name"] for m in listing["models"]] == ["housing", "mnist"]


def test_request_id_is_echoed_or_generated(client):
    resp = client.get("/v1/models", headers={"X-Request-ID": "trace-42"})
    assert resp.headers["X-Request-ID"] == "trace-42"
    generated = client.get("/v1/models", headers={"X-Request-ID": "bad id\x01"})
    assert generated.headers["X-Request-ID"] not in ("", "bad id\x01")
    assert len(client.get("/v1/models").headers["X-Request-ID"]) == 32


# -- errors ----------------------------------------------------------------------------------
GOOD_ROW = random_housing(1)[0].tolist()
GOOD_IMAGE = random_images(1)[0].reshape(784).tolist()


def housing_named(**changes):
    row = dict(zip(HOUSING_FEATURES, GOOD_ROW, strict=True))
    for k, v in changes.items():
        if v is KeyError:
            del row[k]
        else:
            row[k] = v
    return row


BAD_HOUSING = [
    # (id, raw JSON body, expected details)
    ("nan-literal", '{"instances": [[NaN, 1,1,1,1,1,1,1,1,1,1,1,1]]}', {"body"}),
    ("infinity-literal", '{"instances": [[Infinity,1,1,1,1,1,1,1,1,1,1,1,1]]}', {"body"}),
    ("huge-number", '{"instances": [[1e999,1,1,1,1,1,1,1,1,1,1,1,1]]}', {"body"}),
    ("truncated", '{"instances": [[1,2', {"body"}),
    ("empty-body", "", {"body"}),
]


@pytest.mark.parametrize("name,body,keys", BAD_HOUSING, ids=[b[0] for b in BAD_HOUSING])
def test_malformed_json_is_400(client, name, body, keys):
    err = assert_error(post(client, "housing", body), 400)
    assert set(err["details"]) == keys
    assert "JSON" in err["error"]
    if name != "truncated" and name != "empty-body":
        assert "finite" in err["error"]


def details_at(err, *path):
    node = err["details"]
    for key in path:
        assert key in node, (path, err)
        node = node[key]
    return node


@pytest.mark.parametrize("instances,path", [
    ([GOOD_ROW, housing_named(RM="6.5")], ("instances", "1", "RM")),
    ([housing_named(RM=True)], ("instances", "0", "RM")),
    ([housing_named(RM=None)], ("instances", "0", "RM")),
    ([housing_named(RM={"x": 1})], ("instances", "0", "RM")),
    ([housing_named(RM=[6.5])], ("instances", "0", "RM")),
    ([GOOD_ROW, GOOD_ROW, GOOD_ROW, housing_named(RM=KeyError)], ("instances", "3", "RM")),
    ([housing_named(ROOMS=6.0)], ("instances", "0", "ROOMS")),
    ([GOOD_ROW[:12]], ("instances", "0")),
    ([GOOD_ROW + [1.0]], ("instances", "0")),
    ([GOOD_ROW[:5] + [True] + GOOD_ROW[6:]], ("instances", "0", "5")),
    ([GOOD_ROW[:5] + ["6.5"] + GOOD_ROW[6:]], ("instances", "0", "5")),
    ([GOOD_ROW[:5] + [None] + GOOD_ROW[6:]], ("instances", "0", "5")),
    ([GOOD_ROW, GOOD_ROW[:5] + [1e39] + GOOD_ROW[6:]], ("instances", "1", "RM")),
    ([GOOD_ROW, "not an instance"], ("instances", "1")),
    ([GOOD_ROW, 5], ("instances", "1")),
    ([[GOOD_ROW]], ("instances", "0")),
], ids=["string-value", "boolean", "null", "object", "list-value", "missing-field",
        "unknown-field", "12-numbers", "14-numbers", "boolean-in-list", "string-in-list",
        "null-in-list", "beyond-float32", "string-instance", "number-instance", "too-deep"])
def test_invalid_housing_instances_point_at_instance_and_field(client, instances, path):
    err = assert_error(post(client, "housing", {"instances": instances}), 400)
    messages = details_at(err, *path)
    assert messages


IMAGE_28x27 = [[0] * 27 for _ in range(28)]


@pytest.mark.parametrize("instances,path", [
    ([GOOD_IMAGE[:783]], ("instances", "0")),
    ([GOOD_IMAGE + [0]], ("instances", "0")),
    ([GOOD_IMAGE, IMAGE_28x27], ("instances", "1")),
    ([GOOD_IMAGE[:10] + [-1] + GOOD_IMAGE[11:]], ("instances", "0")),
    ([GOOD_IMAGE, GOOD_IMAGE[:10] + [256] + GOOD_IMAGE[11:]], ("instances", "1")),
    ([GOOD_IMAGE[:10] + [True] + GOOD_IMAGE[11:]], ("instances", "0", "10")),
    ([GOOD_IMAGE[:10] + [False] + GOOD_IMAGE[11:]], ("instances", "0", "10")),
    ([GOOD_IMAGE[:10] + ["7"] + GOOD_IMAGE[11:]], ("instances", "0", "10")),
    ([GOOD_IMAGE[:10] + [None] + GOOD_IMAGE[11:]], ("instances", "0", "10")),
    ([GOOD_IMAGE[:10] + [{"v": 1}] + GOOD_IMAGE[11:]], ("instances", "0", "10")),
    ([[[0] * 28] * 27 + [[0] * 27 + [True]]], ("instances", "0", "27", "27")),
    ([GOOD_IMAGE, {"pixels": GOOD_IMAGE}], ("instances", "1")),
], ids=["783", "785", "28x27", "pixel-minus-1", "pixel-256", "true", "false", "string",
        "null", "object", "nested-boolean", "object-instance"])
def test_invalid_mnist_instances_point_at_instance_and_position(client, instances, path):
    err = assert_error(post(client, "mnist", {"instances": instances}), 400)
    assert details_at(err, *path)


@pytest.mark.parametrize("body,key", [
    ({"instances": []}, "instances"),
    ({}, "instances"),
    ({"instances": GOOD_ROW}, "instances"),
    ({"instances": {"0": GOOD_ROW}}, "instances"),
    ({"instances": "x"}, "instances"),
    ({"instances": [GOOD_ROW], "inputs": [GOOD_ROW]}, "inputs"),
    ({"instances": [GOOD_ROW], "signature_name": "other"}, "signature_name"),
    ({"instances": [GOOD_ROW], "extra": 1}, "extra"),
], ids=["empty", "missing", "flat-row", "object", "string", "unknown-inputs",
        "bad-signature", "unknown-field"])
def test_invalid_envelope_is_400(client, body, key):
    err = assert_error(post(client, "housing", body), 400)
    assert key in err["details"]


@pytest.mark.parametrize("body", ["[1, 2]", '"instances"', "null", "3"])
def test_body_must_be_an_object(client, body):
    assert_error(post(client, "housing", body), 400)


def test_too_many_instances_is_400(make_app):
    client = make_app(max_instances=3).test_client()
    err = assert_error(post(client, "housing", {"instances": [GOOD_ROW] * 4}), 400)
    assert "limit of 3" in err["details"]["instances"][0]
    assert post(client, "housing", {"instances": [GOOD_ROW] * 3}).status_code == 200


def test_too_large_body_is_413(make_app):
    client = make_app(max_body_bytes=2048).test_client()
    body = json.dumps({"instances": [GOOD_IMAGE]})
    assert len(body) > 2048
    err = assert_error(post(client, "mnist", body), 413)
    assert "2048" in err["error"]


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/xml"])
def test_non_json_content_type_is_415(client, ctype):
    err = assert_error(post(client, "housing", json.dumps({"instances": [GOOD_ROW]}),
                            content_type=ctype), 415)
    assert "application/json" in err["error"]


@pytest.mark.parametrize("ctype", [None, "application/json; charset=utf-8",
                                   "application/vnd.api+json"])
def test_json_content_types_and_none_are_accepted(client, ctype):
    headers = {"Content-Type": ctype} if ctype else {}
    resp = client.post(PREDICT.format("housing"),
                       data=json.dumps({"instances": [GOOD_ROW]}), headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)


def test_compressed_body_is_415(client):
    resp = post(client, "housing", {"instances": [GOOD_ROW]},
                headers={"Content-Encoding": "gzip"})
    assert_error(resp, 415)


@pytest.mark.parametrize("url", ["/v1/models/nope:predict",
                                 "/v1/models/housing/versions/9:predict",
                                 "/v1/models/housing/versions/x:predict", "/v1/nothing"])
def test_unknown_model_version_or_route_is_404(client, url):
    assert_error(client.post(url, json={"instances": [GOOD_ROW]}), 404)


@pytest.mark.parametrize("url", ["/v1/models/nope", "/v1/models/housing/versions/2"])
def test_unknown_model_status_is_404(client, url):
    assert_error(client.get(url), 404)


@pytest.mark.parametrize("method,url,allowed", [
    ("get", "/v1/models/housing:predict", "POST"),
    ("put", "/v1/models/housing:predict", "POST"),
    ("post", "/v1/models", "GET"),
    ("delete", "/v1/models/housing", "GET"),
])
def test_wrong_method_is_405_with_allow(client, method, url, allowed):
    resp = getattr(client, method)(url)
    assert_error(resp, 405)
    assert allowed in resp.headers["Allow"]


def test_mixed_layouts_in_one_request_are_400(client):
    image = random_images(1)[0]
    err = assert_error(post(client, "mnist", {"instances": [image.reshape(784).tolist(),
                                                          image.tolist()]}), 400)
    assert "same layout" in err["error"]


# -- GET /: KServe V1 server liveness -----------------------------------------------------
@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_root_is_kserve_v1_liveness(client, accept):
    """Browsers get the web page instead (test_page.py)."""
    resp = client.get("/", headers={"Accept": accept} if accept else {})
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert resp.get_json() == {"status": "alive"}


def test_root_answers_browsers_with_the_page_when_there_is_one(artifacts):
    from flask import Flask, Response

    from service.core.dataplane import DataPlane
    from service.core.registry import Registry
    from service.http import v1
    from service.http.routing import ModelNameConverter, VersionConverter

    app = Flask(__name__)
    app.url_map.converters.update(model=ModelNameConverter, version=VersionConverter)
    app.register_blueprint(v1.make_blueprint(DataPlane(Registry(artifacts), 8), page=lambda:
                                             Response("<h1>page</h1>", mimetype="text/html")))
    client = app.test_client()
    browser = client.get("/", headers={"Accept": "text/html,*/*;q=0.8"})
    assert browser.mimetype == "text/html"
    for accept in ("*/*", "application/json", "application/json, text/html"):
        assert client.get("/", headers={"Accept": accept}).get_json() == {"status": "alive"}
