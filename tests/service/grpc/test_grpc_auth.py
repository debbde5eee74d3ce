"""``python -m service.grpc`` alone, with SERVICE_AUTH_TOKEN(_FILE): health calls open,
everything else needs ``authorization: Bearer <token>``, UNAUTHENTICATED otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as tg

from tests.factories import make_classifier, random_images
from tests.service.grpc.grpc_server import GrpcServer, code_of

TOKEN = "s3cret-token-0123456789"


@pytest.fixture(scope="module", params=["env", "file"])
def server(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("grpc-auth")
    make_classifier(workdir / "artifacts")
    if request.param == "env":
        env = {"SERVICE_AUTH_TOKEN": TOKEN}
    else:
        (workdir / "token").write_text(f"  {TOKEN}\n")
        env = {"SERVICE_AUTH_TOKEN": "", "SERVICE_AUTH_TOKEN_FILE": str(workdir / "token")}
    srv = GrpcServer(workdir / "artifacts", workdir, env)
    yield srv
    assert srv.stop() == 0


def infer(client: tg.InferenceServerClient, headers: dict[str, str] | None = None):
    x = random_images(2, seed=1).astype(np.uint8)
    inp = tg.InferInput("images", list(x.shape), "UINT8")
    inp.set_data_from_numpy(x)
    return client.infer("mnist", [inp], headers=headers)


def test_health_calls_are_open(server):
    assert server.client.is_server_live() and server.client.is_server_ready()
    assert server.client.is_model_ready("mnist")


@pytest.mark.parametrize("headers", [None, {"authorization": "Bearer wrong"},
                                     {"authorization": TOKEN},
                                     {"authorization": f"Basic {TOKEN}"}])
def test_other_calls_need_the_token(server, headers):
    code, message = code_of(lambda: infer(server.client, headers))
    assert code == "UNAUTHENTICATED" and "Bearer" in message
    assert code_of(lambda: server.client.get_model_metadata("mnist", headers=headers))[0] \
        == "UNAUTHENTICATED"
    assert code_of(lambda: server.client.get_server_metadata(headers=headers))[0] \
        == "UNAUTHENTICATED"


def test_the_token_opens_them(server):
    headers = {"authorization": f"Bearer {TOKEN}"}
    assert infer(server.client, headers).as_numpy("label").shape == (2,)
    assert server.client.get_model_metadata("mnist", headers=headers).name == "mnist"
