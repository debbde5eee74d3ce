"""Fixtures shared by all test packages."""

import os
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


def pytest_report_header() -> str:
    """The OpenBLAS kernel in use: outputs computed elsewhere differ by kernel (tolerance.py)."""
    import numpy  # noqa: F401  (loads OpenBLAS, so threadpoolctl can see it)
    from threadpoolctl import threadpool_info

    kernels = {i.get("architecture", "?") for i in threadpool_info() if i["user_api"] == "blas"}
    forced = os.environ.get("OPENBLAS_CORETYPE")
    return f"BLAS kernel: {', '.join(sorted(kernels))}" + (f" (forced: {forced})" if forced
                                                           else "")
