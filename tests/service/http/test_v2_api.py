"""Open Inference Protocol (KServe V2) routes through the Flask test client."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from model import Predictor
from service.core.schemas import (
    ErrorResponse,
    InferenceResponse,
    Readiness,
    V2ModelMetadata,
    V2ServerMetadata,
)
from service.core.signature import interface_from_metadata
from tests.factories import random_housing, random_images

HEADER = "Inference-Header-Content-Length"


def infer(client, model, body, version=None, **kwargs):
    url = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    return client.post(url, json=body, **kwargs)


def tensor(name, array, datatype="FP32", nested=False):
    array = np.asarray(array)
    return {"name": name, "shape": list(array.shape), "datatype": datatype,
            "data": array.tolist() if nested else array.ravel().tolist()}


def assert_error(resp, status):
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert ErrorResponse().validate(body) == {}
    return body


def test_health_and_server_metadata(client):
    assert client.get("/v2/health/live").get_json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200 and Readiness().validate(ready.get_json()) == {}
    meta = client.get("/v2").get_json()
    assert V2ServerMetadata().validate(meta) == {}
    assert "binary_tensor_data" in meta["extensions"]


def test_model_metadata_describes_what_infer_takes(client):
    meta = client.get("/v2/models/mnist").get_json()
    assert V2ModelMetadata().validate(meta) == {}
    assert meta["inputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, 28, 28]},
                              {"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
                               {"name": "label", "datatype": "INT64", "shape": [-1]}]
    housing = client.get("/v2/models/housing/versions/1").get_json()
    assert housing["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 13]}]
    assert housing["outputs"] == [{"name": "MEDV", "datatype": "FP32", "shape": [-1]}]
    assert client.get("/v2/models/mnist/ready").get_json() == {"name": "mnist", "ready": True}
    assert client.get("/v2/models/mnist/versions/1/ready").status_code == 200


def test_model_metadata_carries_the_whole_signature(client, artifacts):
    """A client (the batch scorer's remote mode) rebuilds the server's exact Signature."""
    for name in ("housing", "mnist"):
        meta = client.get(f"/v2/models/{name}").get_json()
        expected = Predictor.from_artifact(artifacts / name / "1").interface
        assert interface_from_metadata(meta) == expected
    assert meta["parameters"] == {"task": "classification", "value_range": [0.0, 255.0],
                                  "labels": [str(i) for i in range(10)]}
    with pytest.raises(ValueError, match="unexpected model metadata"):
        interface_from_metadata({**meta, "parameters": {}})


@pytest.mark.parametrize("datatype", ["FP32", "FP64", "UINT8", "INT64", "INT32"])
@pytest.mark.parametrize("shape", ["flat", "image"])
def test_mnist_infer_matches_predictor(client, artifacts, datatype, shape):
    images = random_images(4, seed=5)
    data = images.reshape(4, 784) if shape == "flat" else images
    resp = infer(client, "mnist", {"id": "r1", "inputs": [tensor("images", data, datatype,
                                                                 nested=True)]})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert InferenceResponse().validate(body) == {}
    assert body["id"] == "r1" and body["model_name"] == "mnist" and body["model_version"] == "1"
    out = {o["name"]: o for o in body["outputs"]}
    expected = Predictor.from_artifact(artifacts / "mnist" / "1").predict(images)
    assert out["probabilities"]["shape"] == [4, 10]
    got = np.asarray(out["probabilities"]["data"], dtype=np.float32).reshape(4, 10)
    np.testing.assert_array_equal(got, expected)
    assert out["label"] == {"name": "label", "datatype": "INT64", "shape": [4],
                            "data": expected.argmax(axis=1).tolist()}


def test_housing_infer_and_requested_outputs(client, artifacts):
    rows = random_housing(3, seed=9)
    body = {"inputs": [tensor("features", rows, "FP64")], "outputs": [{"name": "MEDV"}]}
    resp = infer(client, "housing", body, version="1")
    out = resp.get_json()["outputs"]
    expected = Predictor.from_artifact(artifacts / "housing" / "1").predict(rows)
    assert [o["name"] for o in out] == ["MEDV"] and out[0]["shape"] == [3]
    np.testing.assert_array_equal(np.asarray(out[0]["data"], dtype=np.float32), expected)


def test_only_requested_outputs_are_returned(client):
    body = {"inputs": [tensor("images", random_images(2))], "outputs": [{"name": "label"}]}
    out = infer(client, "mnist", body).get_json()["outputs"]
    assert [o["name"] for o in out] == ["label"]


def binary_request(json_part: dict, *arrays: np.ndarray) -> tuple[bytes, dict]:
    header = orjson.dumps(json_part)
    body = header + b"".join(a.tobytes() for a in arrays)
    return body, {HEADER: str(len(header)), "Content-Type": "application/octet-stream"}


def parse_binary_response(resp) -> dict[str, np.ndarray]:
    length = int(resp.headers[HEADER])
    raw = resp.get_data()
    header = orjson.loads(raw[:length])
    out, offset = {}, length
    for o in header["outputs"]:
        size = o["parameters"]["binary_data_size"]
        dtype = {"FP32": "<f4", "INT64": "<i8"}[o["datatype"]]
        out[o["name"]] = np.frombuffer(raw[offset:offset + size], dtype).reshape(o["shape"])
        offset += size
    assert offset == len(raw)
    return out


def test_binary_tensor_data_in_and_out(client, artifacts):
    images = random_images(3, seed=1)
    body, headers = binary_request({
        "inputs": [{"name": "images", "shape": [3, 28, 28], "datatype": "UINT8",
                    "parameters": {"binary_data_size": images.nbytes}}],
        "parameters": {"binary_data_output": True}}, images)
    resp = client.post("/v2/models/mnist/infer", data=body, headers=headers)
    assert resp.status_code == 200, resp.get_data()
    out = parse_binary_response(resp)
    expected = Predictor.from_artifact(artifacts / "mnist" / "1").predict(images)
    np.testing.assert_array_equal(out["probabilities"], expected)
    np.testing.assert_array_equal(out["label"], expected.argmax(axis=1))


def test_binary_output_can_be_chosen_per_output(client):
    body = {"inputs": [tensor("images", random_images(1))],
            "outputs": [{"name": "label", "parameters": {"binary_data": True}},
                        {"name": "probabilities", "parameters": {"binary_data": False}}]}
    resp = infer(client, "mnist", body)
    length = int(resp.headers[HEADER])
    header = orjson.loads(resp.get_data()[:length])
    assert "data" in header["outputs"][1] and "data" not in header["outputs"][0]
    assert len(resp.get_data()) == length + 8


IMG = random_images(1)[0].ravel().tolist()


def image_tensor(**changes):
    t = {"name": "images", "shape": [1, 784], "datatype": "FP32", "data": IMG}
    t.update(changes)
    return t


@pytest.mark.parametrize("body,path", [
    ({}, ("inputs",)),
    ({"inputs": []}, ("inputs",)),
    ({"inputs": [image_tensor()], "extra": 1}, ("extra",)),
    ({"inputs": [image_tensor(name="pixels")]}, ("inputs", "0", "name")),
    ({"inputs": [image_tensor(datatype="BOOL")]}, ("inputs", "0", "datatype")),
    ({"inputs": [image_tensor(datatype="BYTES")]}, ("inputs", "0", "datatype")),
    ({"inputs": [image_tensor(datatype="FLOAT")]}, ("inputs", "0", "datatype")),
    ({"inputs": [image_tensor(shape=[1, 783])]}, ("inputs", "0", "shape")),
    ({"inputs": [image_tensor(shape=[0, 784], data=[])]}, ("inputs", "0", "shape")),
    ({"inputs": [image_tensor(shape=[1, "784"])]}, ("inputs", "0", "shape")),
    ({"inputs": [image_tensor(shape=[1, -784])]}, ("inputs", "0", "shape")),
    ({"inputs": [image_tensor(data=IMG[:783])]}, ("inputs", "0", "data")),
    ({"inputs": [image_tensor(data=IMG + [1])]}, ("inputs", "0", "data")),
    ({"inputs": [image_tensor(data=IMG[:5] + [True] + IMG[6:])]}, ("inputs", "0", "data", "5")),
    ({"inputs": [image_tensor(data=IMG[:5] + ["1"] + IMG[6:])]}, ("inputs", "0", "data", "5")),
    ({"inputs": [image_tensor(data=IMG[:5] + [None] + IMG[6:])]}, ("inputs", "0", "data", "5")),
    ({"inputs": [image_tensor(data=IMG[:5] + [256] + IMG[6:])]}, ("inputs", "0", "data", "0")),
    ({"inputs": [image_tensor(data=IMG[:5] + [-1] + IMG[6:])]}, ("inputs", "0", "data", "0")),
    ({"inputs": [image_tensor(data=None)]}, ("inputs", "0", "data")),
    ({"inputs": [{k: v for k, v in image_tensor().items() if k != "data"}]},
     ("inputs", "0", "data")),
    ({"inputs": [image_tensor(data=[IMG[:400], IMG[400:]])]}, ("inputs", "0", "data")),
    ({"inputs": [image_tensor(datatype="UINT8", data=IMG[:5] + [300] + IMG[6:])]},
     ("inputs", "0", "data")),
    ({"inputs": [image_tensor(datatype="INT32", data=IMG[:5] + [1.5] + IMG[6:])]},
     ("inputs", "0", "data")),
    ({"inputs": [image_tensor(), image_tensor()]}, ("inputs",)),
    ({"inputs": [image_tensor()], "parameters": {"priority": 1}}, ("parameters", "priority")),
    ({"inputs": [image_tensor(parameters={"shared_memory_region": "x"})]},
     ("inputs", "0", "parameters", "shared_memory_region")),
    ({"inputs": [image_tensor(parameters={"content_type": "pd"})]},
     ("inputs", "0", "parameters", "content_type")),
    ({"inputs": [image_tensor()], "outputs": [{"name": "logits"}]}, ("outputs", "0", "name")),
    ({"inputs": [image_tensor()], "outputs": [{"name": "label", "parameters": {
        "classification": 3}}]}, ("outputs", "0", "parameters", "classification")),
    ({"inputs": [image_tensor()], "parameters": {"binary_data_output": "yes"}},
     ("parameters", "binary_data_output")),
], ids=["no-inputs", "empty-inputs", "unknown-field", "wrong-name", "bool-type", "bytes-type",
        "unknown-type", "wrong-shape", "empty-batch", "string-dim", "negative-dim", "short-data",
        "long-data", "boolean", "string", "null", "pixel-256", "pixel-minus-1", "null-data",
        "missing-data", "ragged", "uint8-overflow", "int-with-fraction", "two-inputs",
        "unknown-parameter", "unknown-input-parameter", "pandas-content-type",
        "unknown-output", "classification-extension", "non-bool-flag"])
def test_invalid_infer_requests_are_400_with_details(client, body, path):
    err = assert_error(infer(client, "mnist", body), 400)
    node = err["details"]
    for key in path:
        assert key in node, (path, err)
        node = node[key]


def test_too_many_rows_is_400(make_app):
    client = make_app(max_instances=2).test_client()
    data = random_images(3)
    err = assert_error(infer(client, "mnist", {"inputs": [tensor("images", data)]}), 400)
    assert "limit of 2" in err["error"]


@pytest.mark.parametrize("header,extra", [("abc", b""), ("999999", b""), ("10", b"xx")])
def test_bad_binary_framing_is_400(client, header, extra):
    json_part = orjson.dumps({"inputs": [{"name": "images", "shape": [1, 784],
                                          "datatype": "UINT8",
                                          "parameters": {"binary_data_size": 784}}]})
    resp = client.post("/v2/models/mnist/infer", data=json_part + bytes(784) + extra,
                       headers={HEADER: header if header != "10" else str(len(json_part))})
    assert_error(resp, 400)


def test_binary_size_must_match_shape(client):
    body, headers = binary_request({"inputs": [{
        "name": "images", "shape": [1, 784], "datatype": "FP32",
        "parameters": {"binary_data_size": 784}}]}, np.zeros(784, np.uint8))
    assert_error(client.post("/v2/models/mnist/infer", data=body, headers=headers), 400)


def test_octet_stream_without_binary_header_is_415(client):
    resp = client.post("/v2/models/mnist/infer", data=b"{}",
                       headers={"Content-Type": "application/octet-stream"})
    assert_error(resp, 415)


@pytest.mark.parametrize("url", ["/v2/models/nope", "/v2/models/nope/ready",
                                 "/v2/models/mnist/versions/3",
                                 "/v2/models/mnist/versions/0/ready"])
def test_unknown_model_or_version_is_404(client, url):
    assert_error(client.get(url), 404)


def test_wrong_method_is_405(client):
    resp = client.get("/v2/models/mnist/infer")
    assert_error(resp, 405)
    assert resp.headers["Allow"] == "POST"


# -- model_name / model_version in the body (KServe's Python SDK sends them) -----------------
@pytest.mark.parametrize("extra,version", [
    ({"model_name": "mnist"}, None),
    ({"model_name": "mnist", "model_version": "1"}, None),
    ({"model_name": "mnist", "model_version": "1"}, "1"),
    ({"model_version": ""}, None),
])
def test_body_may_name_the_model_and_version_of_the_url(client, extra, version):
    body = {"id": "k1", **extra, "inputs": [image_tensor()]}
    resp = infer(client, "mnist", body, version=version)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["model_name"] == "mnist" and resp.get_json()["id"] == "k1"


@pytest.mark.parametrize("extra,version,field", [
    ({"model_name": "housing"}, None, "model_name"),
    ({"model_name": ""}, None, "model_name"),
    ({"model_version": "2"}, None, "model_version"),
    ({"model_version": "2"}, "1", "model_version"),
    ({"model_version": 1}, None, "model_version"),
    ({"model_name": "mnist", "model_versions": "1"}, None, "model_versions"),
])
def test_body_contradicting_the_url_is_400(client, extra, version, field):
    err = assert_error(infer(client, "mnist", {**extra, "inputs": [image_tensor()]},
                             version=version), 400)
    assert field in err["details"], err
    if field == "model_name" and extra["model_name"]:
        assert "'housing'" in err["error"] and "/v2/models/mnist/infer" in err["error"]
