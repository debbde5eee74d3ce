"""Ask pip whether every pin installs from wheels on the Pythons the README promises.

Only one Python runs on the project machine, so the claim "3.11 to 3.14" is checked the
way pip would meet it elsewhere: for each Python and platform below, pip resolves every
runtime, dev and build pin of pyproject.toml (with their dependencies) from binary or
pure-Python wheels only (`--only-binary=:all:`, `--dry-run`: nothing is installed). A pin
that would need a compiler on some Python fails here, naming the Python and platform.

    python tests/wheel_matrix.py [--python 3.13 ...] [--no-deps]

Exit 0 when every combination resolves, 1 when one does not, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PYTHONS = ["3.11", "3.12", "3.13", "3.14"]
# manylinux tags from newest to oldest glibc a wheel may target; pip takes a list as given.
ARCHES = {
    "x86_64": ["manylinux_2_28", "manylinux_2_27", "manylinux_2_17", "manylinux2014",
               "manylinux_2_12", "manylinux2010", "manylinux_2_5", "manylinux1"],
    "aarch64": ["manylinux_2_28", "manylinux_2_27", "manylinux_2_17", "manylinux2014"],
}
EXTRAS = ("dev", "spark")     # what `make setup` installs
# Published as pure-Python source only (no wheel for any platform): pip builds it anywhere,
# so it is left out of the wheel check (and with it its own dependencies, py4j).
SOURCE_ONLY = {"pyspark"}


def pins() -> list[str]:
    """The runtime dependencies, the EXTRAS and the build requirements of pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found = list(project["project"]["dependencies"])
    for extra in EXTRAS:
        found += project["project"]["optional-dependencies"][extra]
    found += project["build-system"]["requires"]
    return sorted(r for r in set(found) if r.split("==")[0] not in SOURCE_ONLY)


def applying(requirements: list[str], python: str, arch: str) -> list[str]:
    """The requirements whose environment markers hold on CPython ``python``, Linux ``arch``
    (pip evaluates markers for the interpreter it runs on, not for ``--python-version``)."""
    env = {"python_version": python, "python_full_version": f"{python}.0",
           "platform_machine": arch, "sys_platform": "linux", "platform_system": "Linux",
           "os_name": "posix", "implementation_name": "cpython",
           "platform_python_implementation": "CPython"}
    return [r for r in requirements
            if Requirement(r).marker is None or Requirement(r).marker.evaluate(env)]


def resolve(requirements: list[str], python: str, arch: str, deps: bool) -> tuple[bool, str]:
    """Whether pip finds wheels for all `requirements` on CPython `python` for Linux `arch`."""
    requirements = applying(requirements, python, arch)
    platforms = [f"--platform={tag}_{arch}" for tag in ARCHES[arch]]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        run = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
             "--only-binary=:all:", f"--python-version={python}", "--implementation=cp",
             *platforms, "--platform=any", f"--target={tmp}/target", f"--report={report}",
             *([] if deps else ["--no-deps"]), *requirements],
            capture_output=True, text=True)
        if run.returncode != 0:
            errors = [ln for ln in run.stderr.splitlines() if ln.startswith("ERROR")]
            return False, " ".join(errors) or run.stderr.strip()[-500:]
        chosen = json.loads(report.read_text())["install"]
        return True, f"{len(chosen)} wheels"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", choices=PYTHONS,
                        help="a Python version to check (repeatable; default: all of "
                             f"{', '.join(PYTHONS)})")
    parser.add_argument("--no-deps", action="store_true",
                        help="check the pins only, not what they depend on")
    args = parser.parse_args(argv)
    requirements, failed = pins(), 0
    print(f"{len(requirements)} pins from pyproject.toml (runtime, {', '.join(EXTRAS)}, build; "
          f"source-only, not checked: {', '.join(sorted(SOURCE_ONLY))})")
    for python in args.python or PYTHONS:
        for arch in ARCHES:
            ok, detail = resolve(requirements, python, arch, deps=not args.no_deps)
            print(f"CPython {python} manylinux {arch}: {'ok' if ok else 'FAILED'} ({detail})")
            failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
