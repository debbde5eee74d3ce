"""Run tests/service/grpc/ in a pytest of its own (see GRPC_ISOLATED in conftest.py) and
fail with its report if any of its tests fails."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.service.conftest import GRPC_ISOLATED, GRPC_TESTS
from tests.service.gunicorn_server import ROOT


def test_grpc_suite_in_its_own_interpreter():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(GRPC_TESTS)],
        cwd=ROOT, env={**os.environ, GRPC_ISOLATED: "1"}, capture_output=True, text=True,
        timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout
