"""The Makefile's set-up step on machines unlike ours: an old Python, or no venv module."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.gunicorn_server import ROOT

OLD_PYTHON = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "Python 3.10.12"; exit 0; fi
exit 1
"""
# Debian's python3 without python3-venv: runs, but `import ensurepip` fails.
NO_ENSUREPIP = """#!/bin/sh
case "$2" in *ensurepip*) echo "ModuleNotFoundError: No module named 'ensurepip'" >&2; exit 1;;
esac
exec "{python}" "$@"
"""


def make_setup(tmp_path: Path, python: str) -> subprocess.CompletedProcess:
    venv = tmp_path / "venv"
    return subprocess.run(["make", "--no-print-directory", f"PYTHON={python}", f"VENV={venv}",
                           f"{venv}/.installed"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def fake(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bin" / "python3"
    path.parent.mkdir()
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(("script", "message"), [
    (OLD_PYTHON, "make: needs Python 3.11 or newer as python3 (or python3.11 ... python3.14) "
                 "on PATH, found: Python 3.10.12; install one, or run make "
                 "PYTHON=/path/to/python3.x"),
    (NO_ENSUREPIP, "cannot create virtual environments (no ensurepip); on Debian or Ubuntu: "
                   "apt-get install python3-venv"),
])
def test_setup_stops_with_one_line_that_says_what_is_needed(tmp_path, script, message):
    python = fake(tmp_path, script.format(python=sys.executable))
    run = make_setup(tmp_path, python)
    assert run.returncode == 2
    first = run.stderr.splitlines()[0]
    assert message in first and "Traceback" not in run.stderr, run.stderr
    assert not (tmp_path / "venv").exists()
