"""Fixtures shared by all test packages."""

from pathlib import Path

import pytest

from tests.factories import make_classifier, make_regressor


@pytest.fixture
def regressor_dir(tmp_path: Path) -> Path:
    """Folder of a tiny housing-like artifact (artifacts/housing/1)."""
    return make_regressor(tmp_path / "artifacts")


@pytest.fixture(params=["mlp", "cnn"])
def classifier_dir(request, tmp_path: Path) -> Path:
    """Folder of a tiny MNIST-like artifact, once as an MLP and once as a CNN."""
    return make_classifier(tmp_path / "artifacts", arch=request.param)
