"""One Spark session (local[2]) for all the Spark tests: starting one costs seconds."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.factories import make_classifier, make_regressor
from tests.spark_support import need_spark


@pytest.fixture(scope="session")
def spark():
    need_spark()
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (SparkSession.builder.master("local[2]").appName("tests")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .getOrCreate())
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_artifacts(tmp_path_factory) -> Path:
    """housing/1 (regressor) and mnist/1 (CNN): the convolution is where BLAS threads show."""
    root = tmp_path_factory.mktemp("spark") / "artifacts"
    make_regressor(root)
    make_classifier(root, arch="cnn")
    return root
