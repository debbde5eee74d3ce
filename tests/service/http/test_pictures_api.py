"""Pictures on the HTTP routes (issue #13): V1 ``{"b64": ...}`` instances and raw ``image/*``
bodies, V2 ``BYTES`` tensors in JSON (base64) and binary data, the 28x28 picture the model
saw on request, and every kind of bad picture as a 400 (413 for too many pixels), never 500.
"""

from __future__ import annotations

import base64
import io
import json
import struct

import numpy as np
import pytest
from PIL import Image

from model.digit_image import normalize_digit
from service.imaging import decode_image
from tests.factories import digit_png
from tests.service.gunicorn_server import reference
from tests.service.http.test_v1_api import assert_error
from tests.service.test_imaging import png_header_only

PNG = digit_png(seed=1)
B64 = base64.b64encode(PNG).decode()


def seen(*files: bytes) -> np.ndarray:
    """What the model should see of ``files``: float32 (n, 28, 28)."""
    return np.stack([normalize_digit(decode_image(f)) for f in files])


def expected(artifacts, *files: bytes) -> np.ndarray:
    return reference(artifacts / "mnist" / "1", seen(*files))


def encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


#: (name, file bytes, claimed content type, what the error says)
BAD = [
    ("text", b"hello, world", "image/png", "not a picture"),
    ("empty", b"", "image/png", "empty"),
    ("truncated", PNG[: len(PNG) // 2], "image/png", "truncated"),
    ("disguised", encoded(Image.new("L", (30, 30), 9), "GIF"), "image/png",
     "the picture is GIF but was sent as image/png"),
    ("tiff", encoded(Image.new("L", (30, 30), 9), "TIFF"), "image/tiff",
     "TIFF pictures are not accepted"),
    ("blank", encoded(Image.new("L", (30, 30), 255), "PNG"), "image/png", "no ink found"),
]


# -- V1 ----------------------------------------------------------------------------------------
def test_v1_b64_instances_are_predicted_as_the_normalised_digit(client, artifacts):
    other = digit_png(seed=2, scale=3, fmt="JPEG")
    resp = client.post("/v1/models/mnist:predict", json={"instances": [
        {"b64": B64}, {"b64": "data:image/jpeg;base64," + base64.b64encode(other).decode()}]})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    preds = resp.get_json()["predictions"]
    probs = np.asarray([p["probabilities"] for p in preds], np.float32)
    np.testing.assert_array_equal(probs, expected(artifacts, PNG, other))
    assert [p["label"] for p in preds] == probs.argmax(axis=1).tolist()
    assert all("image" not in p for p in preds)


def test_v1_return_image_gives_the_28x28_the_model_saw(client):
    resp = client.post("/v1/models/mnist:predict", json={
        "instances": [{"b64": B64}], "parameters": {"return_image": True}})
    image = np.asarray(resp.get_json()["predictions"][0]["image"])
    assert image.shape == (28, 28) and image.max() == 255
    np.testing.assert_array_equal(image, np.rint(seen(PNG)[0]))


def test_v1_raw_picture_body(client, artifacts):
    resp = client.post("/v1/models/mnist/versions/1:predict?return_image=true", data=PNG,
                       headers={"Content-Type": "image/png"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    (pred,) = resp.get_json()["predictions"]
    np.testing.assert_array_equal(np.float32(pred["probabilities"]),
                                  expected(artifacts, PNG)[0])
    np.testing.assert_array_equal(pred["image"], np.rint(seen(PNG)[0]))
    plain = client.post("/v1/models/mnist:predict", data=PNG,
                        headers={"Content-Type": "image/png"}).get_json()
    assert "image" not in plain["predictions"][0]


@pytest.mark.parametrize("body, where", [
    ({"instances": [{"b64": B64}, [[0] * 28] * 28]}, ("instances", "1")),
    ({"instances": [{"b64": B64, "label": 3}]}, ("instances", "0", "b64")),
    ({"instances": [{"b64": 12}]}, ("instances", "0", "b64")),
    ({"instances": [{"b64": "iVBOR-w0"}]}, ("instances", "0", "b64")),
    ({"instances": [{"b64": "abc"}]}, ("instances", "0", "b64")),
    ({"instances": [[[0] * 28] * 28], "parameters": {"return_image": True}},
     ("parameters", "return_image")),
    ({"instances": [{"b64": B64}], "parameters": {"return_image": "yes"}},
     ("parameters", "return_image")),
], ids=["mixed", "extra-key", "not-a-string", "url-safe", "padding", "image-of-numbers",
        "non-bool"])
def test_v1_bad_picture_requests_are_400_with_details(client, body, where):
    node = assert_error(client.post("/v1/models/mnist:predict", json=body), 400)["details"]
    for key in where:
        node = node[key]


def test_pictures_to_a_tabular_model_are_400(client):
    err = assert_error(client.post("/v1/models/housing:predict",
                                   json={"instances": [{"b64": B64}]}), 400)
    assert "does not take pictures" in err["error"]
    raw = client.post("/v1/models/housing:predict", data=PNG,
                      headers={"Content-Type": "image/png"})
    assert_error(raw, 400)


@pytest.mark.parametrize("name, data, ctype, says", BAD, ids=[b[0] for b in BAD])
def test_bad_pictures_are_400_on_every_path(client, name, data, ctype, says):
    raw = assert_error(client.post("/v1/models/mnist:predict", data=data,
                                   headers={"Content-Type": ctype}), 400)
    assert says in raw["error"] and says in raw["details"]["body"][0]
    text = base64.b64encode(data).decode() or "="
    v1 = assert_error(client.post("/v1/models/mnist:predict", json={"instances": [
        {"b64": B64}, {"b64": f"data:{ctype};base64,{text}"}]}), 400)
    assert says in v1["details"]["instances"]["1"]["b64"][0] or name == "empty"
    v2 = assert_error(client.post("/v2/models/mnist/infer", json={"inputs": [
        {"name": "image", "datatype": "BYTES", "shape": [1], "data": [text]}]}), 400)
    assert "0" in v2["details"]["inputs"]


def test_pixel_limit_is_413_before_decoding(make_app):
    client = make_app(max_image_pixels=10_000).test_client()
    assert client.post("/v1/models/mnist:predict", data=PNG,  # 112x112 = 12,544 pixels
                       headers={"Content-Type": "image/png"}).status_code == 413
    bomb = png_header_only(100_000, 100_000)
    for c in (client, make_app().test_client()):
        err = assert_error(c.post("/v1/models/mnist:predict", json={"instances": [
            {"b64": base64.b64encode(bomb).decode()}]}), 413)
        assert "megapixels are accepted" in err["error"]
        assert err["details"]["instances"]["0"]["b64"]


def test_unknown_picture_type_is_415_for_other_routes(client):
    resp = client.post("/v2/models/mnist/infer", data=PNG, headers={"Content-Type": "image/png"})
    assert_error(resp, 415)


# -- V2 ----------------------------------------------------------------------------------------
def v2_bytes(client, files: list[bytes], outputs=None, shape=None, **params):
    """POST the files as input ``image`` in binary tensor data (as tritonclient frames it)."""
    raw = b"".join(struct.pack("<I", len(f)) + f for f in files)
    header = {"inputs": [{"name": "image", "datatype": "BYTES",
                          "shape": shape or [len(files)],
                          "parameters": {"binary_data_size": len(raw)}}]}
    if outputs is not None:
        header["outputs"] = outputs
    if params:
        header["parameters"] = params
    head = json.dumps(header).encode()
    return client.post("/v2/models/mnist/infer", data=head + raw, headers={
        "Inference-Header-Content-Length": str(len(head)),
        "Content-Type": "application/octet-stream"})


def test_v2_bytes_in_json_as_base64(client, artifacts):
    other = digit_png(seed=3)
    resp = client.post("/v2/models/mnist/infer", json={"inputs": [{
        "name": "image", "datatype": "BYTES", "shape": [2, 1],
        "parameters": {"content_type": "base64"},
        "data": [[B64], [base64.b64encode(other).decode()]]}],
        "parameters": {"return_image": True}})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    outs = {o["name"]: o for o in resp.get_json()["outputs"]}
    assert list(outs) == ["probabilities", "label", "image"]
    np.testing.assert_array_equal(np.float32(outs["probabilities"]["data"]).reshape(2, 10),
                                  expected(artifacts, PNG, other))
    assert outs["image"]["datatype"] == "UINT8" and outs["image"]["shape"] == [2, 28, 28]
    np.testing.assert_array_equal(np.reshape(outs["image"]["data"], (2, 28, 28)),
                                  np.rint(seen(PNG, other)))


def test_v2_bytes_as_binary_data_with_the_image_output_asked_for(client, artifacts):
    files = [PNG, digit_png(seed=4, fmt="BMP")]
    resp = v2_bytes(client, files, outputs=[
        {"name": "label"}, {"name": "image", "parameters": {"binary_data": True}}])
    assert resp.status_code == 200, resp.get_data(as_text=True)
    length = int(resp.headers["Inference-Header-Content-Length"])
    header = json.loads(resp.data[:length])
    assert [o["name"] for o in header["outputs"]] == ["label", "image"]
    assert header["outputs"][0]["data"] == expected(artifacts, *files).argmax(1).tolist()
    image = np.frombuffer(resp.data[length:], np.uint8).reshape(2, 28, 28)
    np.testing.assert_array_equal(image, np.rint(seen(*files)))


@pytest.mark.parametrize("files, shape, field", [
    ([PNG], [2], "parameters"),            # fewer elements than the shape says
    ([PNG, PNG], [1, 2], "shape"),
    ([PNG], [1], "parameters"),            # a broken length prefix, below
], ids=["count", "shape", "framing"])
def test_v2_bad_bytes_tensors_are_400(client, files, shape, field, request):
    if request.node.callspec.id == "framing":
        files = [PNG + b"\x00\x00"]
        shape = [2]
    err = assert_error(v2_bytes(client, files, shape=shape), 400)
    assert field in err["details"]["inputs"]["0"]


def test_v2_image_output_needs_pictures(client):
    err = assert_error(client.post("/v2/models/mnist/infer", json={
        "inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 784],
                    "data": [0.0] * 784}], "parameters": {"return_image": True}}), 400)
    assert "picture input" in err["error"]


def test_openapi_documents_pictures(client):
    spec = client.get("/openapi.json").get_json()
    body = spec["paths"]["/v1/models/{name}:predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "image/*"}
    variants = spec["components"]["schemas"]["mnist_instance"]["oneOf"]
    assert any(v.get("required") == ["b64"] for v in variants)
    assert "oneOf" not in spec["components"]["schemas"]["housing_instance"]["oneOf"][1]
