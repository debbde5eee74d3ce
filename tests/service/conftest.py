"""Fixtures for the service tests: tiny artifacts, an app over them, its test client."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.app import create_app
from tests.factories import make_classifier, make_regressor

#: tests/service/grpc/ runs in an interpreter of its own (test_grpc_isolated.py starts it
#: with this variable set): tritonclient.grpc and the kserve SDK (http/test_kserve_client.py)
#: both register the protocol's ``inference.*`` messages in protobuf's one default pool,
#: which refuses the second. Named on the command line, those tests run directly.
GRPC_TESTS = Path(__file__).resolve().parent / "grpc"
GRPC_ISOLATED = "GRPC_TESTS_ISOLATED"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path != GRPC_TESTS or os.environ.get(GRPC_ISOLATED):
        return None
    for arg in config.args:
        target = Path(arg.split("::")[0]).resolve()
        if target == GRPC_TESTS or GRPC_TESTS in target.parents:
            return None
    return True


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """An artifacts folder with housing/1 and mnist/1 (tiny, seeded)."""
    root = tmp_path / "artifacts"
    make_regressor(root)
    make_classifier(root)
    return root


@pytest.fixture
def make_app(artifacts: Path):
    """Build an app over ``artifacts`` with config overrides (no polling unless asked)."""
    def build(**config):
        settings = {"artifacts_dir": artifacts, "reload_interval": 0, "log_level": "WARNING"}
        settings.update(config)
        return create_app(settings)
    return build


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()
