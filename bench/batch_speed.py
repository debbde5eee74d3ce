"""Batch scoring speed: the whole ``python -m service.batch`` command, timed from outside.

1. The official MNIST test set (10,000 images, IDX gzip, read from ../shared/data/mnist and
   never copied here) with an MNIST artifact; target < 5 s.
2. A generated 1,000,000-row housing CSV (bundled rows with 1% noise, in a temp folder)
   with a housing artifact; target < 30 s.

Artifacts: the repository's ``artifacts/<name>/<latest>`` if present; otherwise the default
architecture is built seeded and untrained (speed does not depend on the weights): the
``digits_cnn`` network, and the housing ensemble (8 members, 64-64) with its quantile
preprocessing fitted on the bundled data. Each command runs once per round in a fresh
process; peak RSS is that process's (``os.wait4``).

    python bench/batch_speed.py                  # the record (lead)
    python bench/batch_speed.py --rows 100000    # a short sanity run
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist" / "t10k-images-idx3-ubyte.gz"
HOUSING_CSV = ROOT / "data" / "housing" / "housing.csv"
sys.path.insert(0, str(ROOT))


def latest(artifacts: Path, name: str) -> int | None:
    from model import list_versions

    versions = list_versions(artifacts / name) if (artifacts / name).is_dir() else []
    return max(versions) if versions else None


def build_mnist(root: Path) -> None:
    from model import save_artifact
    from model.preprocessing import Pipeline, Scale
    from training.architectures import digits_network

    manifest = {"task": "classification", "input": {"range": [0, 255]},
                "output": {"labels": [str(i) for i in range(10)]},
                "preprocessing": {"input": Pipeline([Scale(1 / 255)]).get_config()},
                "metrics": {}, "training": {"note": "benchmark stand-in: seeded, untrained"}}
    save_artifact(root, "mnist", digits_network("cnn", (28, 28), seed=0), manifest)


def build_housing(root: Path) -> None:
    from model import Sequential, ensemble, save_artifact
    from model.preprocessing import Pipeline, QuantileNormal, TargetScaler
    from training.architectures import housing_member
    from training.datasets import FEATURES, load_housing

    data = load_housing(HOUSING_CSV)
    pipeline = Pipeline([QuantileNormal(n_quantiles=50)]).fit(data.X)
    nets = [Sequential(housing_member((64, 64)), input_shape=(13,)).build(seed=k)
            for k in range(8)]
    manifest = {"task": "regression", "input": {"features": list(FEATURES)},
                "output": {"name": "MEDV", "unit": "$1000s"},
                "preprocessing": {"input": pipeline.get_config(),
                                  "target": TargetScaler.fitted(data.y, log=True).get_config()},
                "metrics": {}, "training": {"note": "benchmark stand-in: seeded, untrained"}}
    save_artifact(root, "housing", ensemble(nets), manifest)


def housing_csv(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` bundled rows (with MEDV) drawn at random, each value times (1 + 1% noise)."""
    header = HOUSING_CSV.read_text().splitlines()[0]
    base = np.loadtxt(HOUSING_CSV, delimiter=",", skiprows=1)
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        f.write(header + "\n")
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            x = base[rng.integers(0, len(base), n)] * (1 + 0.01 * rng.standard_normal((n, 14)))
            np.savetxt(f, x, fmt="%.6g", delimiter=",")


def run_once(cmd: list[str], log: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one run of ``cmd``, its output kept in ``log``."""
    started = time.perf_counter()
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(cmd)}\n{log.read_text()}")
    return seconds, usage.ru_maxrss / 1024


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, NumPy "
            f"{np.__version__}, load average before the run {load}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="housing CSV rows")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each command")
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    parser.add_argument("--mnist", type=Path, default=SHARED_MNIST)
    parser.add_argument("--workers", type=int, help="--workers of the scorer")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        work = Path(tmp)
        sources = {}
        for name, build in (("mnist", build_mnist), ("housing", build_housing)):
            version = latest(args.artifacts, name)
            if version is not None:
                folder = args.artifacts.resolve() / name / str(version)
                shown = folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder
                sources[name] = (args.artifacts, f"`{shown}`")
            else:
                build(work / "artifacts")
                sources[name] = (work / "artifacts", f"seeded untrained stand-in ({name}/1)")
        csv_path = work / "housing.csv"
        housing_csv(csv_path, args.rows)
        extra = ["--workers", str(args.workers)] if args.workers else []
        jobs = [
            ("MNIST test set, IDX gzip", "mnist", args.mnist, 10_000, work / "mnist.csv", 5),
            (f"housing CSV ({args.rows:,} rows)", "housing", csv_path, args.rows,
             work / "housing-out.csv", 30 * args.rows / 1_000_000),
        ]
        print(f"Machine: {machine()}\n")
        print("| input | model | rows | seconds (median) | rows/s | peak RSS | target |")
        print("|---|---|---|---|---|---|---|")
        commands = []
        for title, name, path, rows, out, target in jobs:
            artifacts, described = sources[name]
            cmd = [sys.executable, "-m", "service.batch", "--model", name, "--input", str(path),
                   "--output", str(out), "--artifacts", str(artifacts), "--no-progress", *extra]
            commands.append(shlex.join(cmd))
            times, peaks = [], []
            for _ in range(args.rounds):
                seconds, peak = run_once(cmd, work / "log.txt")
                times.append(seconds)
                peaks.append(peak)
            median = statistics.median(times)  # the machine is shared: medians, not best
            print(f"| {title} | {described} | {rows:,} | {median:.2f} | {rows / median:,.0f} | "
                  f"{max(peaks):.0f} MiB | < {target:g} s |")
        print("\nCommands (temp paths):")
        for c in commands:
            print(f"    {c}")


if __name__ == "__main__":
    main()
