"""End to end under real gunicorn (2 sync workers on 127.0.0.1) with requests and tritonclient.

One server per module; each test uses its own model names where it changes the artifacts.
"""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import orjson
import pytest
import requests
import tritonclient.http as triton

from model.digit_image import normalize_digit
from service.imaging import decode_image
from tests.factories import (
    digit_png,
    make_classifier,
    make_regressor,
    random_housing,
    random_images,
)
from tests.service.core.test_registry import corrupt
from tests.service.gunicorn_server import RELOAD_INTERVAL, reference, running

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gunicorn")
    artifacts = workdir / "artifacts"
    make_regressor(artifacts)
    make_classifier(artifacts)
    corrupt(make_classifier(artifacts, seed=3))          # mnist/2 broken: mnist/1 serves
    corrupt(make_classifier(artifacts, name="broken"))   # a model with nothing loadable
    make_regressor(artifacts, name="rollout")
    with running(artifacts, workdir) as srv:
        yield srv



# -- answers ---------------------------------------------------------------------------------
def test_v1_predictions_equal_in_process_predictor(server):
    images = random_images(7, seed=11)
    resp = requests.post(server.url + "/v1/models/mnist:predict",
                         json={"instances": images.tolist()}, timeout=10)
    assert resp.status_code == 200 and resp.headers["X-Request-ID"]
    probs = np.asarray([p["probabilities"] for p in resp.json()["predictions"]], np.float32)
    np.testing.assert_array_equal(probs, reference(server.artifacts / "mnist" / "1", images))

    rows = random_housing(5, seed=2)
    resp = requests.post(server.url + "/v1/models/housing:predict",
                         json={"instances": rows.tolist()}, timeout=10)
    np.testing.assert_array_equal(np.asarray(resp.json()["predictions"], np.float32),
                                  reference(server.artifacts / "housing" / "1", rows))


def test_v2_with_requests(server):
    rows = random_housing(3, seed=4)
    body = {"inputs": [{"name": "features", "shape": [3, 13], "datatype": "FP64",
                        "data": rows.ravel().tolist()}]}
    resp = requests.post(server.url + "/v2/models/housing/versions/1/infer", json=body,
                         timeout=10)
    assert resp.status_code == 200, resp.text
    out = resp.json()["outputs"][0]
    np.testing.assert_array_equal(np.asarray(out["data"], np.float32),
                                  reference(server.artifacts / "housing" / "1", rows))


@pytest.mark.parametrize("binary", [True, False])
def test_v2_with_tritonclient(server, binary):
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("mnist") and not client.is_model_ready("broken")
        assert client.is_model_ready("mnist", "1") and not client.is_model_ready("mnist", "2")
        meta = client.get_model_metadata("mnist")
        assert meta["inputs"][0]["name"] == "images"
        assert client.get_server_metadata()["name"] == "numpy-model-server"

        images = random_images(4, seed=8).astype(np.float32)
        inp = triton.InferInput("images", list(images.shape), "FP32")
        inp.set_data_from_numpy(images, binary_data=binary)
        outputs = [triton.InferRequestedOutput("probabilities", binary_data=binary),
                   triton.InferRequestedOutput("label", binary_data=binary)]
        result = client.infer("mnist", [inp], outputs=outputs, request_id="t-1")
        expected = reference(server.artifacts / "mnist" / "1", images)
        np.testing.assert_array_equal(result.as_numpy("probabilities"), expected)
        np.testing.assert_array_equal(result.as_numpy("label"), expected.argmax(axis=1))
        assert result.get_response()["id"] == "t-1"

        default = client.infer("mnist", [inp])  # no outputs named: all, binary by default
        np.testing.assert_array_equal(default.as_numpy("probabilities"), expected)

        rows = random_housing(2).astype(np.float32)
        hin = triton.InferInput("features", [2, 13], "FP32")
        hin.set_data_from_numpy(rows, binary_data=binary)
        medv = client.infer("housing", [hin], model_version="1").as_numpy("MEDV")
        np.testing.assert_array_equal(medv, reference(server.artifacts / "housing" / "1", rows))

        bad = triton.InferInput("images", [1, 783], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 783), np.float32), binary_data=binary)
        with pytest.raises(triton.InferenceServerException, match="783"):
            client.infer("mnist", [bad])
    finally:
        client.close()


@pytest.mark.parametrize("binary", [True, False])
def test_v2_pictures_with_tritonclient(server, binary):
    """A BYTES array of picture files: raw bytes in binary data, base64 text in JSON."""
    files = [digit_png(seed=5), digit_png(seed=6, fmt="JPEG")]
    elements = files if binary else [base64.b64encode(f).decode() for f in files]
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        meta = client.get_model_metadata("mnist")
        assert {"name": "image", "datatype": "BYTES", "shape": [-1]} in meta["inputs"]
        inp = triton.InferInput("image", [2], "BYTES")
        inp.set_data_from_numpy(np.array(elements, dtype=object), binary_data=binary)
        result = client.infer("mnist", [inp], outputs=[
            triton.InferRequestedOutput("probabilities", binary_data=binary),
            triton.InferRequestedOutput("image", binary_data=binary)])
        seen = np.stack([normalize_digit(decode_image(f)) for f in files])
        np.testing.assert_array_equal(result.as_numpy("probabilities"),
                                      reference(server.artifacts / "mnist" / "1", seen))
        np.testing.assert_array_equal(result.as_numpy("image"), np.rint(seen))

        bad = triton.InferInput("image", [1], "BYTES")
        bad.set_data_from_numpy(np.array([b"GIF89a" if binary else "R0lGODlh"],
                                         dtype=object), binary_data=binary)
        with pytest.raises(triton.InferenceServerException, match="GIF picture"):
            client.infer("mnist", [bad])
    finally:
        client.close()


# -- operations ------------------------------------------------------------------------------
def test_broken_artifacts_are_503_for_that_model_or_version_only(server):
    def status(method, path, **kw):
        return requests.request(method, server.url + path, timeout=10, **kw).status_code

    image = {"instances": random_images(1).tolist()}
    assert status("POST", "/v1/models/broken:predict", json=image) == 503
    assert status("GET", "/v2/models/broken/ready") == 503
    assert status("POST", "/v1/models/mnist/versions/2:predict", json=image) == 503
    assert status("POST", "/v1/models/mnist:predict", json=image) == 200
    assert status("POST", "/v1/models/mnist/versions/1:predict", json=image) == 200
    assert status("GET", "/v2/health/ready") == 200
    reason = requests.get(server.url + "/v1/models/broken", timeout=10).json()
    assert "checksum" in reason["error"]


def test_metrics_are_aggregated_across_workers(server):
    def total(text: str) -> float:
        key = 'model_server_requests_total{endpoint="v1.predict",model="housing",status="200"'
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(key))

    body = {"instances": random_housing(1).tolist()}
    before = total(requests.get(server.url + "/metrics", timeout=10).text)
    sent, pids = 0, set()
    # Rounds of 40 until both workers have answered: on a loaded machine one worker can
    # take a whole round while the other waits for a core (bounded: 10 rounds).
    with ThreadPoolExecutor(4) as pool:
        while len(pids) < 2 and sent < 400:
            codes = list(pool.map(lambda _: requests.post(
                server.url + "/v1/models/housing:predict", json=body, timeout=10).status_code,
                range(40)))
            assert codes == [200] * 40
            sent += 40
            pids = {line["pid"] for line in server.access_lines()
                    if line["path"] == "/v1/models/housing:predict"}
    assert len(pids) == 2, f"both workers should have answered {sent} requests"
    for _ in range(4):  # whichever worker answers, it reports the whole server
        after = total(requests.get(server.url + "/metrics", timeout=10).text)
        assert after - before == sent


def test_oversized_body_gets_413_over_http(server):
    body = orjson.dumps({"instances": random_images(600).tolist()})
    assert len(body) > 1 << 20
    resp = requests.post(server.url + "/v1/models/mnist:predict", data=body,
                         headers={"Content-Type": "application/json"}, timeout=20)
    assert resp.status_code == 413 and "limit" in resp.json()["error"]


def test_oversized_chunked_body_gets_413(server):
    def chunks():
        for _ in range(24):  # 1.5 MiB, no Content-Length
            yield b"[" + b"1," * 32767 + b"1]"

    resp = requests.post(server.url + "/v1/models/mnist:predict", data=chunks(),
                         headers={"Content-Type": "application/json"}, timeout=20)
    assert resp.status_code == 413
    small = orjson.dumps({"instances": random_images(1).tolist()})
    resp = requests.post(server.url + "/v1/models/mnist:predict", data=iter([small]),
                         headers={"Content-Type": "application/json"}, timeout=20)
    assert resp.status_code == 200, resp.text


def test_bad_requests_never_get_5xx(server):
    rng = random.Random(1234)
    good_v1 = orjson.dumps({"instances": random_images(2).tolist()})
    good_v2 = orjson.dumps({"inputs": [{"name": "features", "shape": [1, 13],
                                        "datatype": "FP32",
                                        "data": random_housing(1).ravel().tolist()}]})
    urls = ["/v1/models/mnist:predict", "/v1/models/housing:predict",
            "/v2/models/housing/infer", "/v2/models/mnist/infer", "/v1/models/mnist",
            "/v2/models/housing", "/v1/models/mnist/versions/x:predict", "/v2/x", "/metrics"]
    tokens = [b"true", b"false", b"null", b'"x"', b"NaN", b"-Infinity", b"1e999", b"{}",
              b"[]", b"[[[[", b"-0", b"1e-400", b'"\\u0000"', b"99999999999999999999999"]
    seen = set()
    with requests.Session() as session:
        for _ in range(250):
            body = bytearray(rng.choice([good_v1, good_v2]))
            for _ in range(rng.randint(1, 3)):
                op = rng.random()
                pos = rng.randrange(len(body))
                if op < 0.4:
                    body[pos:pos + rng.randint(1, 4)] = rng.choice(tokens)
                elif op < 0.6:
                    del body[pos:]
                elif op < 0.8:
                    body[pos] = rng.randrange(256)
                else:
                    body[pos:pos] = rng.choice(tokens) + b","
            method = rng.choice(["POST"] * 6 + ["GET", "PUT", "DELETE"])
            ctype = rng.choice(["application/json"] * 4 + ["text/plain", None,
                                                           "application/octet-stream"])
            headers = {"Content-Type": ctype} if ctype else {}
            if rng.random() < 0.1:
                headers["Inference-Header-Content-Length"] = str(rng.randint(-5, len(body) + 5))
            url = rng.choice(urls)
            resp = session.request(method, server.url + url, data=bytes(body),
                                   headers=headers, timeout=10)
            assert resp.status_code < 500, (method, url, bytes(body)[:200], resp.text[:300])
            assert resp.headers["Content-Type"].startswith(("application/json", "text/plain"))
            seen.add(resp.status_code)
    assert {400, 415} <= seen


def test_rollout_under_load_drops_nothing(server):
    rows = random_housing(2, seed=6)
    body = {"instances": rows.tolist()}
    stop = threading.Event()
    results: list[tuple[int, str]] = []

    def hammer() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                resp = session.post(server.url + "/v1/models/rollout:predict", json=body,
                                    timeout=10)
                results.append((resp.status_code, resp.json().get("model_version", "")))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        new = make_regressor(server.artifacts, name="rollout", seed=9)  # version 2, atomic
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(v == "2" for _, v in results[-8:]):
            time.sleep(0.05)
        time.sleep(3 * RELOAD_INTERVAL + 0.3)  # both workers have rescanned by now
        # and a graceful gunicorn reload while traffic flows drops nothing either
        os.kill(server.proc.pid, signal.SIGHUP)
        time.sleep(2.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
    assert results and all(code == 200 for code, _ in results), \
        {code for code, _ in results}
    assert {v for _, v in results} == {"1", "2"}
    for _ in range(6):  # every worker now serves version 2 by default
        resp = requests.post(server.url + "/v1/models/rollout:predict", json=body, timeout=10)
        assert resp.json()["model_version"] == "2"
    np.testing.assert_array_equal(np.asarray(resp.json()["predictions"], np.float32),
                                  reference(new, rows))


def test_bad_environment_stops_gunicorn_with_a_clear_message(tmp_path):
    env = {**os.environ, "PORT": "eighty", "SERVICE_ARTIFACTS_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "service/gunicorn.conf.py",
         "service.app:create_app()"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60)
    assert proc.returncode != 0
    assert "PORT must be an integer, got 'eighty'" in proc.stderr
