"""What Spark tests need (pyspark, Java): missing in CI is a failure, on a developer's machine a
skip that says what to install."""

from __future__ import annotations

import os
import shutil

import pytest


def spark_missing() -> str | None:
    """What is missing to run Spark here, in words, or None."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed: pip install -e '.[dev,spark]' (make setup does)"
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and os.path.isdir(java_home)):
        return "Java 17 or later is not installed (e.g. apt-get install openjdk-17-jre-headless)"
    return None


def need_spark() -> None:
    """Skip (fail when CI=true) unless Spark can run."""
    missing = spark_missing()
    if missing is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"Spark tests cannot run in CI: {missing}")
    pytest.skip(missing)
