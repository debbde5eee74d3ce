"""The Open Inference Protocol over gRPC, end to end: gunicorn serving HTTP and gRPC as one
unit (the gRPC process started by gunicorn.conf.py), driven by tritonclient.grpc and
compared with HTTP V2 answers for the same inputs."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
import orjson
import pytest
import requests
import tritonclient.grpc as tg
import tritonclient.http as th
from tritonclient.grpc import service_pb2, service_pb2_grpc

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
from tests.service.grpc.grpc_server import code_of, wait_live
from tests.service.gunicorn_server import Server, free_port, reference, running
from tests.service.test_imaging import png_header_only

#: Input tensor names of the test models (an unknown model gets the digits' name).
INPUTS = {"mnist": "images", "housing": "features", "rollout": "features"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("grpc")
    artifacts = workdir / "artifacts"
    make_regressor(artifacts)
    make_classifier(artifacts)
    corrupt(make_classifier(artifacts, name="broken"))   # a model with nothing loadable
    make_regressor(artifacts, name="rollout")
    grpc_port = free_port()
    with running(artifacts, workdir, env={"GRPC_PORT": str(grpc_port)}) as srv:
        srv.grpc_address = f"127.0.0.1:{grpc_port}"
        srv.grpc = tg.InferenceServerClient(srv.grpc_address)
        wait_live(srv.grpc, srv.proc, srv.log)
        srv.http = th.InferenceServerClient(srv.url.removeprefix("http://"))
        yield srv


def grpc_infer(srv, model: str, x: np.ndarray, datatype: str, **kwargs):
    inp = tg.InferInput(INPUTS.get(model, "images"), list(x.shape), datatype)
    inp.set_data_from_numpy(x)
    return srv.grpc.infer(model, [inp], **kwargs)


def http_infer(srv, model: str, x: np.ndarray, datatype: str):
    inp = th.InferInput(INPUTS.get(model, "images"), list(x.shape), datatype)
    inp.set_data_from_numpy(x, binary_data=True)
    return srv.http.infer(model, [inp])


def raw_stub(srv) -> service_pb2_grpc.GRPCInferenceServiceStub:
    """Triton's own generated stubs: typed contents, parameters, messages as sent."""
    return service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(srv.grpc_address))


# -- health and metadata -------------------------------------------------------------------
def test_health(server):
    assert server.grpc.is_server_live() and server.grpc.is_server_ready()
    assert server.grpc.is_model_ready("mnist") and server.grpc.is_model_ready("mnist", "1")
    assert not server.grpc.is_model_ready("broken")
    assert code_of(lambda: server.grpc.is_model_ready("nope"))[0] == "NOT_FOUND"
    assert code_of(lambda: server.grpc.is_model_ready("mnist", "9"))[0] == "NOT_FOUND"


def test_metadata_equals_http(server):
    meta = server.grpc.get_server_metadata(as_json=True)
    assert meta["name"] == requests.get(server.url + "/v2", timeout=5).json()["name"]
    for model in ("mnist", "housing"):
        got = server.grpc.get_model_metadata(model, as_json=True)
        want = requests.get(f"{server.url}/v2/models/{model}", timeout=5).json()
        for key in ("name", "versions", "platform", "inputs", "outputs"):
            got_value = got[key]
            if key in ("inputs", "outputs"):
                got_value = [{**t, "shape": [int(d) for d in t["shape"]]} for t in got_value]
            assert got_value == want[key], key
    assert code_of(lambda: server.grpc.get_model_metadata("nope"))[0] == "NOT_FOUND"
    assert code_of(lambda: server.grpc.get_model_metadata("broken"))[0] == "UNAVAILABLE"


# -- inference -------------------------------------------------------------------------------
@pytest.mark.parametrize("datatype", ["FP32", "UINT8"])
def test_mnist_raw_equals_http_and_predictor(server, datatype):
    x = random_images(5, seed=3).astype(np.float32 if datatype == "FP32" else np.uint8)
    res = grpc_infer(server, "mnist", x, datatype, request_id="req-7")
    assert res.get_response().id == "req-7"
    assert res.get_response().model_version == "1"
    want = http_infer(server, "mnist", x, datatype)
    np.testing.assert_array_equal(res.as_numpy("probabilities"), want.as_numpy("probabilities"))
    np.testing.assert_array_equal(res.as_numpy("label"), want.as_numpy("label"))
    np.testing.assert_array_equal(res.as_numpy("probabilities"),
                                  reference(server.artifacts / "mnist" / "1",
                                            x.astype(np.float32)))


def test_housing_raw_equals_http(server):
    x = random_housing(4, seed=1).astype(np.float32)
    res = grpc_infer(server, "housing", x, "FP32")
    want = http_infer(server, "housing", x, "FP32")
    np.testing.assert_array_equal(res.as_numpy("MEDV"), want.as_numpy("MEDV"))
    np.testing.assert_array_equal(res.as_numpy("MEDV"),
                                  reference(server.artifacts / "housing" / "1", x))


def _typed_request(model: str, name: str, x: np.ndarray, datatype: str, field: str):
    req = service_pb2.ModelInferRequest(model_name=model, id="typed")
    tensor = req.inputs.add(name=name, datatype=datatype, shape=x.shape)
    getattr(tensor.contents, field).extend(x.ravel().tolist())
    return req


@pytest.mark.parametrize(("datatype", "field"), [("FP32", "fp32_contents"),
                                                 ("UINT8", "uint_contents")])
def test_typed_contents_equal_raw(server, datatype, field):
    x = random_images(3, seed=5).astype(np.uint8)
    req = _typed_request("mnist", "images", x, datatype, field)
    req.parameters["binary_data_output"].bool_param = False      # typed contents back
    out = raw_stub(server).ModelInfer(req, timeout=10)
    assert out.id == "typed" and not out.raw_output_contents
    probs = np.asarray(out.outputs[0].contents.fp32_contents, np.float32).reshape(3, 10)
    labels = np.asarray(out.outputs[1].contents.int64_contents)
    want = grpc_infer(server, "mnist", x, "UINT8")
    np.testing.assert_array_equal(probs, want.as_numpy("probabilities"))
    np.testing.assert_array_equal(labels, want.as_numpy("label"))


def test_requested_outputs(server):
    x = random_images(2, seed=8).astype(np.float32)
    res = grpc_infer(server, "mnist", x, "FP32", outputs=[tg.InferRequestedOutput("label")])
    assert [o.name for o in res.get_response().outputs] == ["label"]
    assert res.as_numpy("probabilities") is None
    code, message = code_of(lambda: grpc_infer(server, "mnist", x, "FP32",
                                               outputs=[tg.InferRequestedOutput("nope")]))
    assert code == "INVALID_ARGUMENT" and "unknown output 'nope'" in message


# -- pictures: input "image" (BYTES), one file per element, as over HTTP V2 ---------------------
def _pictures(client_module, files: list[bytes]):
    inp = client_module.InferInput("image", [len(files)], "BYTES")
    inp.set_data_from_numpy(np.array(files, dtype=object))
    return inp


def test_pictures_over_grpc_equal_http_v2_and_the_model(server):
    files = [digit_png(seed=5), digit_png(seed=6, fmt="JPEG"), digit_png(seed=7, fmt="BMP")]
    res = server.grpc.infer("mnist", [_pictures(tg, files)], outputs=[
        tg.InferRequestedOutput("probabilities"), tg.InferRequestedOutput("label"),
        tg.InferRequestedOutput("image")])
    want = server.http.infer("mnist", [_pictures(th, files)], outputs=[
        th.InferRequestedOutput("probabilities", binary_data=True),
        th.InferRequestedOutput("label", binary_data=True),
        th.InferRequestedOutput("image", binary_data=True)])
    for name in ("probabilities", "label", "image"):
        np.testing.assert_array_equal(res.as_numpy(name), want.as_numpy(name))
    seen = np.stack([normalize_digit(decode_image(f)) for f in files])
    np.testing.assert_array_equal(res.as_numpy("probabilities"),
                                  reference(server.artifacts / "mnist" / "1", seen))
    assert res.as_numpy("image").dtype == np.uint8
    np.testing.assert_array_equal(res.as_numpy("image"), np.rint(seen))
    # without asking for the image, only the model's outputs come back
    plain = server.grpc.infer("mnist", [_pictures(tg, files[:1])])
    assert [o.name for o in plain.get_response().outputs] == ["probabilities", "label"]


def test_pictures_in_bytes_contents_equal_raw(server):
    files = [digit_png(seed=8), digit_png(seed=9, fmt="JPEG")]
    req = service_pb2.ModelInferRequest(model_name="mnist")
    tensor = req.inputs.add(name="image", datatype="BYTES", shape=[2, 1])
    tensor.contents.bytes_contents.extend(files)
    req.parameters["binary_data_output"].bool_param = False      # typed contents back
    out = raw_stub(server).ModelInfer(req, timeout=10)
    probs = np.asarray(out.outputs[0].contents.fp32_contents, np.float32).reshape(2, 10)
    want = server.grpc.infer("mnist", [_pictures(tg, files)]).as_numpy("probabilities")
    np.testing.assert_array_equal(probs, want)

    del tensor.contents.bytes_contents[1:]
    with pytest.raises(grpc.RpcError) as info:
        raw_stub(server).ModelInfer(req, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "bytes_contents has 1 elements; shape [2, 1] needs 2" in info.value.details()


def _http_picture_error(server, model: str, files: list[bytes]) -> str:
    try:
        server.http.infer(model, [_pictures(th, files)])
    except Exception as exc:  # noqa: BLE001 - tritonclient's InferenceServerException
        return exc.message()
    raise AssertionError("HTTP accepted it")


@pytest.mark.parametrize(("model", "files", "words"), [
    ("mnist", [b"GIF89a"], "the GIF picture"),
    ("mnist", [digit_png(seed=1), b"not a picture at all"], "not a picture"),
    ("mnist", [digit_png(seed=1)[:60]], "PNG picture"),
    ("mnist", [png_header_only(100_000, 100_000)], "megapixels are accepted"),
    ("mnist", [np.full((30, 30), 255, np.uint8).tobytes()], "not a picture"),
    ("housing", [digit_png(seed=1)], "does not take pictures"),
], ids=["truncated-gif", "second-bad", "truncated-png", "pixel-bomb", "raw-pixels",
        "tabular-model"])
def test_bad_pictures_invalid_argument_with_http_message(server, model, files, words):
    code, message = code_of(lambda: server.grpc.infer(model, [_pictures(tg, files)]))
    assert code == "INVALID_ARGUMENT" and words in message, message
    assert message == _http_picture_error(server, model, files)
    assert "Traceback" not in message


# -- errors: INVALID_ARGUMENT with HTTP's messages, NOT_FOUND, UNAVAILABLE, too large ------
def _http_error(server, model, name, x, datatype) -> str:
    inp = th.InferInput(name, list(x.shape), datatype)
    inp.set_data_from_numpy(x, binary_data=True)
    try:
        server.http.infer(model, [inp])
    except Exception as exc:  # noqa: BLE001 - tritonclient's InferenceServerException
        return exc.message()
    raise AssertionError("HTTP accepted it")


@pytest.mark.parametrize(("name", "x", "datatype", "words"), [
    ("images", np.zeros((2, 28, 27), np.float32), "FP32", "Shape [2, 28, 27]"),
    ("images", np.zeros((2, 28, 28), bool), "BOOL", "Datatype BOOL is not supported"),
    ("pixels", np.zeros((2, 28, 28), np.float32), "FP32", "Unknown input 'pixels'"),
    ("images", np.full((1, 28, 28), 300, np.float32), "FP32", "[0, 255]"),
    ("images", np.full((1, 28, 28), np.nan, np.float32), "FP32", "is nan"),
])
def test_bad_input_invalid_argument_with_http_message(server, name, x, datatype, words):
    inp = tg.InferInput(name, list(x.shape), datatype)
    inp.set_data_from_numpy(x)
    code, message = code_of(lambda: server.grpc.infer("mnist", [inp]))
    assert code == "INVALID_ARGUMENT" and words in message
    assert message == _http_error(server, "mnist", name, x, datatype)


def test_typed_contents_errors(server):
    x = np.zeros((1, 28, 28), np.uint8)
    stub = raw_stub(server)
    for req, words in [
        (_typed_request("mnist", "images", x, "FP32", "int_contents"),
         "FP32 data goes in contents.fp32_contents"),
        (_typed_request("mnist", "images", x, "FP16", "fp32_contents"),
         "FP16 data goes in raw_input_contents"),
        (_typed_request("mnist", "images", x.astype(bool), "BOOL", "bool_contents"),
         "Datatype BOOL is not supported"),
        (_typed_request("mnist", "images", x[:, :, :10], "FP32", "fp32_contents"),
         "Shape [1, 28, 10]"),
        (_typed_request("mnist", "images", x.ravel()[:100].reshape(1, 100), "FP32",
                        "fp32_contents"), "Shape [1, 100]"),
    ]:
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(req, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in info.value.details()
    short = service_pb2.ModelInferRequest(model_name="mnist")
    short.inputs.add(name="images", datatype="FP32", shape=[1, 784])
    short.inputs[0].contents.fp32_contents.extend([0.0] * 783)
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(short, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Data has 783 values; shape [1, 784] needs 784 values." in info.value.details()


def test_bytes_that_are_no_message_invalid_argument(server):
    with grpc.insecure_channel(server.grpc_address) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as info:
            call(b"\xff\xff\xff\xff", timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid ModelInfer request message" in info.value.details()


def test_unknown_model_or_version_not_found(server):
    x = np.zeros((1, 28, 28), np.float32)
    assert code_of(lambda: grpc_infer(server, "nope", x, "FP32"))[0] == "NOT_FOUND"
    code, message = code_of(lambda: grpc_infer(server, "mnist", x, "FP32", model_version="7"))
    assert code == "NOT_FOUND" and "7" in message
    assert code_of(lambda: grpc_infer(server, "broken", x, "FP32"))[0] == "UNAVAILABLE"


def test_oversize_message_resource_exhausted(server):
    x = np.zeros((400, 28, 28), np.float32)   # 1.25 MB > SERVICE_MAX_BODY_BYTES (1 MiB)
    code, _ = code_of(lambda: grpc_infer(server, "mnist", x, "FP32"))
    assert code == "RESOURCE_EXHAUSTED"
    assert server.grpc.is_server_live()


def test_new_version_served_without_restart(server):
    x = random_housing(3, seed=4).astype(np.float32)
    assert grpc_infer(server, "rollout", x, "FP32").get_response().model_version == "1"
    new = make_regressor(server.artifacts, name="rollout", seed=9)   # version 2, atomic
    deadline = time.monotonic() + 30
    while server.grpc.get_model_metadata("rollout").versions != ["1", "2"]:
        assert time.monotonic() < deadline, "version 2 never appeared over gRPC"
        time.sleep(0.1)
    res = grpc_infer(server, "rollout", x, "FP32", outputs=[tg.InferRequestedOutput("MEDV")])
    assert res.get_response().model_version == "2"
    np.testing.assert_array_equal(res.as_numpy("MEDV"), reference(new, x))
    old = grpc_infer(server, "rollout", x, "FP32", model_version="1")
    np.testing.assert_array_equal(old.as_numpy("MEDV"),
                                  reference(server.artifacts / "rollout" / "1", x))


# -- many clients, metrics, request log ------------------------------------------------------
def test_concurrent_clients(server):
    def one(seed: int) -> bool:
        client = tg.InferenceServerClient(server.grpc_address)
        x = random_images(1 + seed % 16, seed=seed).astype(np.uint8)
        inp = tg.InferInput("images", list(x.shape), "UINT8")
        inp.set_data_from_numpy(x)
        got = client.infer("mnist", [inp]).as_numpy("probabilities")
        return np.array_equal(got, reference(server.artifacts / "mnist" / "1",
                                             x.astype(np.float32)))

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(one, range(32)))


def test_metrics_and_request_log(server):
    x = random_images(3, seed=2).astype(np.uint8)
    grpc_infer(server, "mnist", x, "UINT8", headers={"x-request-id": "trace-42"})
    code_of(lambda: grpc_infer(server, "nobody", x, "UINT8"))
    text = requests.get(server.url + "/metrics", timeout=5).text   # HTTP's, for both
    assert 'endpoint="grpc.ModelInfer",model="mnist",status="OK",version="1"' in text
    assert 'endpoint="grpc.ModelInfer",model="nobody",status="NOT_FOUND",version=""' in text
    line = next(e for e in server.access_lines() if e["request_id"] == "trace-42")
    assert line["path"] == "/inference.GRPCInferenceService/ModelInfer"
    assert (line["status"], line["model"], line["version"], line["n_instances"]) == \
        ("OK", "mnist", "1", 3)


# -- one unit: stopped together ----------------------------------------------------------------
@contextmanager
def unit(tmp_path: Path) -> Iterator[tuple[Server, int]]:
    """gunicorn with its gRPC process over one model, both answering: (server, gRPC port)."""
    make_classifier(tmp_path / "artifacts")
    port = free_port()
    with running(tmp_path / "artifacts", tmp_path, env={"GRPC_PORT": str(port)}) as srv:
        wait_live(tg.InferenceServerClient(f"127.0.0.1:{port}"), srv.proc, srv.log)
        yield srv, port


def test_sigterm_stops_http_and_grpc(tmp_path):
    with unit(tmp_path) as (srv, port):
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=30) == 0
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the gRPC port is still open"
    assert "grpc service stopping" in srv.log.read_text()


def test_grpc_exit_stops_gunicorn(tmp_path):
    with unit(tmp_path) as (srv, _):
        started = next(orjson.loads(line) for line in srv.log.read_text().splitlines()
                       if "grpc service started" in line)
        os.kill(started["pid"], signal.SIGKILL)
        srv.proc.wait(timeout=30)
