"""Serving load benchmark: our service beside the issue's minimal Flask baseline, with wrk.

Builds a seeded (untrained) MNIST MLP 784-512-10 - the peers' model - and a housing
regressor in a temporary folder, starts each server under gunicorn on 127.0.0.1 with 2
workers and 1 BLAS thread each (ours: the production configuration, service/gunicorn.conf.py;
the baseline: sync workers), runs wrk for a bounded time per configuration, stops the
server by pid, and prints a Markdown table (results for docs/BENCHMARKS.md).

    python bench/serve_load.py [--duration 10] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import Dense, Flatten, ReLU, Sequential  # noqa: E402
from tests.factories import (  # noqa: E402
    make_classifier,
    make_regressor,
    random_housing,
    random_images,
)

LUA = ROOT / "bench" / "post.lua"

# (key, model, rows per request, connections, a new connection for every request). wrk
# keeps connections alive unless the request says "Connection: close"; the sync-worker
# baseline closes after every answer either way.
CONFIGS = [
    ("row_c1", "mnist", 1, 1, False),
    ("row_c8", "mnist", 1, 8, False),
    ("row_c8_close", "mnist", 1, 8, True),
    ("batch256", "mnist", 256, 4, False),
    ("housing_c8", "housing", 1, 8, False),
    ("v2_row_c8", "mnist-v2", 1, 8, False),
    ("cnn_row_c8", "cnn", 1, 8, False),
    ("cnn_batch256", "cnn", 256, 4, False),
]
#: The default CNN the repository ships (served as "mnist" from its own folder).
CNN = ROOT / "artifacts" / "mnist" / "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_artifacts(root: Path) -> Path:
    net = Sequential([Flatten(), Dense(512), ReLU(), Dense(10)], input_shape=(28, 28))
    make_classifier(root, network=net.build(seed=0))
    make_regressor(root, hidden=64)
    return root


def write_bodies(folder: Path) -> dict[tuple[str, int], Path]:
    bodies = {}
    for model, rows in [("mnist", 1), ("mnist", 256), ("housing", 1)]:
        x = random_images(rows).reshape(rows, 784) if model == "mnist" else random_housing(rows)
        path = folder / f"{model}-{rows}.json"
        path.write_text(json.dumps({"instances": np.round(x, 4).tolist()}))
        bodies[(model, rows)] = path
    path = folder / "mnist-v2-1.json"
    path.write_text(json.dumps({"inputs": [{"name": "images", "shape": [1, 784],
                                            "datatype": "FP32",
                                            "data": random_images(1).ravel().tolist()}]}))
    bodies[("mnist-v2", 1)] = path
    for rows in (1, 256):  # the CNN takes the same flat 784-pixel rows
        bodies[("cnn", rows)] = bodies[("mnist", rows)]
    return bodies


class Gunicorn:
    """A gunicorn server for the benchmark, stopped by its own pid."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **env}
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", *args],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self, probe: str, body: Path, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log.name}")
            try:
                r = requests.post(self.url + probe, data=body.read_bytes(),
                                  headers={"Content-Type": "application/json"}, timeout=2)
                if r.status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or still loading on a busy machine
            time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


def run_wrk(url: str, body: Path, connections: int, duration: float,
            close: bool = False) -> dict:
    extra = ["-H", "Connection: close"] if close else []
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "5s", *extra,
         "-s", str(LUA), url], env={**os.environ, "BODY_FILE": str(body)},
        capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def measure(name: str, server: Gunicorn, path_of: dict[str, str],
            bodies: dict[tuple[str, int], Path], duration: float) -> dict[str, dict]:
    """Run every configuration whose model ``path_of`` names against ``server``."""
    results = {}
    first = next(iter(path_of))
    server.wait(path_of[first], bodies[(first, 1)])
    for key, model, rows, conns, close in CONFIGS:
        if model not in path_of:
            continue
        url = server.url + path_of[model]
        run_wrk(url, bodies[(model, rows)], conns, min(2.0, duration), close)  # warm-up
        res = run_wrk(url, bodies[(model, rows)], conns, duration, close)
        res["rows_per_s"] = res["rps"] * rows
        res["load_avg"] = os.getloadavg()[0]
        results[key] = res
        bad = res["non_2xx"] + res["connect_errors"] + res["read_errors"] + res["timeouts"]
        print(f"  {name:10s} {key:11s} {res['rps']:8.0f} req/s  p99 {res['p99_us'] / 1e3:6.1f} ms"
              f"  errors {bad}", file=sys.stderr)
    return results


def table(all_results: dict[str, dict[str, dict]]) -> str:
    lines = ["| server | 1 row, conc. 1 | 1 row, conc. 8 (p99) | 1 row, conc. 8, new connection "
             "each (p99) | 256-row batches (conc. 4) | housing 1 row, conc. 8 (p99) "
             "| V2 JSON 1 row, conc. 8 (p99) |",
             "|---|---|---|---|---|---|---|"]

    def cell(r: dict | None, rows: bool = False, p99: bool = False) -> str:
        if r is None:
            return "—"
        text = f"{r['rows_per_s']:,.0f} rows/s" if rows else f"{r['rps']:,.0f} req/s"
        return text + (f" ({r['p99_us'] / 1e3:.1f} ms)" if p99 else "")

    for name, r in all_results.items():
        lines.append(f"| {name} | {cell(r.get('row_c1'))} | {cell(r.get('row_c8'), p99=True)} "
                     f"| {cell(r.get('row_c8_close'), p99=True)} "
                     f"| {cell(r.get('batch256'), rows=True)} "
                     f"| {cell(r.get('housing_c8'), p99=True)} "
                     f"| {cell(r.get('v2_row_c8'), p99=True)} |")
    if any("cnn_row_c8" in r for r in all_results.values()):
        lines += ["", "Default CNN (artifacts/mnist/1):", "",
                  "| server | 1 row, conc. 8 (p99) | 256-row batches (conc. 4) |",
                  "|---|---|---|"]
        for name, r in all_results.items():
            lines.append(f"| {name} | {cell(r.get('cnn_row_c8'), p99=True)} "
                         f"| {cell(r.get('cnn_batch256'), rows=True)} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds of wrk per configuration (default 10)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if not 1 <= args.duration <= 120:
        parser.error("--duration must be between 1 and 120 seconds")
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    try:
        artifacts = build_artifacts(tmp / "artifacts")
        bodies = write_bodies(tmp)
        ours = (["-c", "service/gunicorn.conf.py", "service.app:create_app()"],
                {"SERVICE_ARTIFACTS_DIR": str(artifacts), "WEB_CONCURRENCY": "2",
                 "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics")})
        baseline = ["-w", "2", "bench.baseline_app:create_app()"]
        # (table row, gunicorn arguments, environment, {model: URL path}); the baseline
        # serves one artifact per server, so it runs once per model.
        runs = [
            ("ours (validated)", *ours, {"mnist": "/v1/models/mnist:predict",
                                         "housing": "/v1/models/housing:predict",
                                         "mnist-v2": "/v2/models/mnist/infer"}),
            ("minimal Flask baseline", baseline,
             {"BASELINE_ARTIFACT": str(artifacts / "mnist" / "1")},
             {"mnist": "/v1/models/mnist:predict"}),
            ("minimal Flask baseline", baseline,
             {"BASELINE_ARTIFACT": str(artifacts / "housing" / "1")},
             {"housing": "/v1/models/housing:predict"}),
        ]
        if (CNN / "manifest.json").exists():
            (tmp / "cnn" / "mnist").mkdir(parents=True)
            (tmp / "cnn" / "mnist" / "1").symlink_to(CNN)
            runs += [
                ("ours (validated)", ours[0], {**ours[1], "SERVICE_ARTIFACTS_DIR":
                                               str(tmp / "cnn")},
                 {"cnn": "/v1/models/mnist:predict"}),
                ("minimal Flask baseline", baseline, {"BASELINE_ARTIFACT": str(CNN)},
                 {"cnn": "/v1/models/mnist:predict"}),
            ]
        else:
            print(f"no default CNN at {CNN}: its rows are left out", file=sys.stderr)
        results: dict[str, dict[str, dict]] = {}
        for i, (name, gargs, env, paths) in enumerate(runs):
            server = Gunicorn(gargs, env, tmp / f"server-{i}.log")
            try:
                results.setdefault(name, {}).update(
                    measure(name, server, paths, bodies, args.duration))
            finally:
                server.stop()
        print(f"\nwrk -t1, {args.duration:g} s per configuration, 2 gunicorn workers "
              f"(ours: service/gunicorn.conf.py; baseline: sync), "
              f"1 BLAS thread each, {os.cpu_count()} cores, MNIST MLP 784-512-10 (seeded, "
              "untrained)\n")
        print(table(results))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
