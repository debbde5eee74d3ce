"""The serving core and the batch scorer never need Flask: a gRPC server or a Spark executor
imports them without a web framework. Checked in a fresh interpreter where Flask (and
Werkzeug) cannot be imported at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import importlib, pkgutil, sys
sys.modules["flask"] = None      # "import flask" now raises ImportError
sys.modules["werkzeug"] = None
import service.core, service.batch
names = ["service.config"]
for package in (service.core, service.batch):
    names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
              if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
print(len(names), "modules")
"""


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_core_and_batch_import_without_flask():
    proc = run(PROBE)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[0]) >= 15


def test_blocking_flask_is_felt_by_the_http_front_end():
    """The probe above would pass vacuously if blocking Flask did not work."""
    proc = run('import sys; sys.modules["flask"] = None; import service.http.app')
    assert proc.returncode != 0 and "flask" in proc.stderr
