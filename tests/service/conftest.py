"""Fixtures for the service tests: tiny artifacts, an app over them, its test client."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.app import create_app
from tests.factories import make_classifier, make_regressor


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
