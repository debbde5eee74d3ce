"""Run the README replay and the model/service tests under other OpenBLAS kernels.

`make test` runs on whichever kernel OpenBLAS picks for this CPU (or the one the machine
forces through OPENBLAS_CORETYPE). Users' CPUs pick others, whose float32 results differ in
the last digits; this runs the tests that compare outputs computed elsewhere once per kernel
in KERNELS, so a tolerance too tight for another CPU fails here and not on a user's machine.
The kernels run at the same time, one pytest process each.

    python tests/kernel_matrix.py [KERNEL ...]      (default: SkylakeX Sandybridge)

Exit 0 when every kernel passed, 1 when one failed, 2 when a kernel cannot run on this CPU
and CI=true (elsewhere that kernel is skipped with a message).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/test_readme.py", "tests/test_tolerance.py", "tests/model", "tests/service",
         # timing and load behaviour, not numbers: once, in `make test`, is enough; Spark
         # runs the same scoring code in JVM-started workers that minutes of start-up cost
         "--ignore-glob=*test_hardening_*", "--ignore-glob=*spark*"]
KERNELS = ["SkylakeX", "Sandybridge"]
# The CPU flag each kernel's instructions need: forcing a kernel the CPU lacks crashes.
NEEDS = {"SkylakeX": "avx512f", "Cooperlake": "avx512_bf16", "Haswell": "avx2",
         "Zen": "avx2", "Sandybridge": "avx", "Nehalem": "sse4_2", "Prescott": "sse3"}
PROBE = ("import numpy, threadpoolctl; "
         "print(*{i.get('architecture') for i in threadpoolctl.threadpool_info() "
         "if i['user_api'] == 'blas'})")


def cpu_flags() -> set[str]:
    """The x86 feature flags of this CPU (empty where /proc/cpuinfo has none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    lines = [ln for ln in text.splitlines() if ln.startswith("flags")]
    return set(lines[0].split(":", 1)[1].split()) if lines else set()


def kernel_env(kernel: str) -> dict[str, str]:
    """This environment with OpenBLAS forced to `kernel` (and its L2 size guess unset)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_L2_SIZE"}
    env["OPENBLAS_CORETYPE"] = kernel
    return env


def main(argv: list[str]) -> int:
    kernels = argv or KERNELS
    unknown = [k for k in kernels if k not in NEEDS]
    if unknown:
        print(f"unknown kernel {' '.join(unknown)}; known: {' '.join(NEEDS)}", file=sys.stderr)
        return 2
    flags, runnable = cpu_flags(), []
    for kernel in kernels:
        if NEEDS[kernel] in flags:
            runnable.append(kernel)
            continue
        print(f"{kernel}: this CPU lacks {NEEDS[kernel]}, so OpenBLAS cannot run that kernel "
              "here; skipped", file=sys.stderr)
        if os.environ.get("CI") == "true":
            return 2
    started = time.monotonic()
    runs = {}
    for kernel in runnable:
        env = kernel_env(kernel)
        got = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
        if got.lower() != kernel.lower():
            print(f"{kernel}: OpenBLAS ran {got!r} instead; is NumPy built with OpenBLAS "
                  "DYNAMIC_ARCH?", file=sys.stderr)
            return 1
        runs[kernel] = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "--tb=short", "-p", "no:cacheprovider", *TESTS],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    failed = []
    for kernel, run in runs.items():
        out, _ = run.communicate()
        summary = out.strip().splitlines()[-1] if out.strip() else "(no output)"
        print(f"OpenBLAS {kernel}: {summary}")
        if run.returncode != 0:
            print(out)
            failed.append(kernel)
    print(f"kernel matrix: {len(runs) - len(failed)}/{len(runs)} kernels passed in "
          f"{time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
