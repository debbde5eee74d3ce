"""gRPC beside HTTP V2 (binary tensor data) under the same load: an MNIST model (the peers'
MLP 784-512-10 of bench/serve_load.py, or the committed CNN with --model cnn), one gunicorn
serving both protocols on 127.0.0.1 (2 sync workers; the gRPC process beside
them), the same closed-loop tritonclient client threads for both, 1-row and 256-row FP32
requests. Rounds alternate HTTP and gRPC; the table gives the medians of the rounds' rows/s
and p99 latency (results for docs/BENCHMARKS.md). Bounded by --seconds per run and
--max-requests per client; the server is stopped by its own pid.

    python bench/grpc_load.py [--model mlp|cnn] [--rounds 3] [--seconds 5] [--clients 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tritonclient.grpc as tg  # noqa: E402
import tritonclient.http as th  # noqa: E402

from bench.serve_load import build_artifacts  # noqa: E402
from tests.factories import random_images  # noqa: E402
from tests.service.grpc.grpc_server import wait_live  # noqa: E402
from tests.service.gunicorn_server import Server, free_port  # noqa: E402

ROWS = (1, 256)
PROTOCOLS = {"HTTP V2 (binary)": (th, "url"), "gRPC": (tg, "grpc_address")}


def one_run(module, address: str, x: np.ndarray, clients: int, seconds: float,
            max_requests: int) -> tuple[float, float]:
    """(rows per second, p99 latency in ms) of ``clients`` closed-loop threads."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        conn = module.InferenceServerClient(address)
        inp = module.InferInput("images", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        conn.infer("mnist", [inp])                    # connect and warm up, unmeasured
        start.wait()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end and len(latencies[i]) < max_requests:
            t0 = time.perf_counter()
            conn.infer("mnist", [inp]).as_numpy("probabilities")
            latencies[i].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    flat = np.concatenate([np.asarray(lat) for lat in latencies])
    return len(flat) * len(x) / elapsed, float(np.percentile(flat, 99) * 1e3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--max-requests", type=int, default=20000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="grpc-bench-") as tmp:
        grpc_port = free_port()
        artifacts = (build_artifacts(Path(tmp) / "artifacts") if args.model == "mlp"
                     else ROOT / "artifacts")
        server = Server(artifacts, Path(tmp), env={"GRPC_PORT": str(grpc_port)})
        try:
            server.wait_ready()
            addresses = {"url": server.url.removeprefix("http://"),
                         "grpc_address": f"127.0.0.1:{grpc_port}"}
            wait_live(tg.InferenceServerClient(addresses["grpc_address"]), server.proc,
                      server.log)
            results: dict[tuple[str, int], list[tuple[float, float]]] = {}
            for r in range(args.rounds):
                for rows in ROWS:
                    x = random_images(rows, seed=r).astype(np.float32)
                    order = list(PROTOCOLS) if r % 2 == 0 else list(reversed(PROTOCOLS))
                    for name in order:
                        module, key = PROTOCOLS[name]
                        got = one_run(module, addresses[key], x, args.clients, args.seconds,
                                      args.max_requests)
                        results.setdefault((name, rows), []).append(got)
                        print(f"round {r + 1} {name:17} {rows:3} rows: {got[0]:9.0f} rows/s "
                              f"p99 {got[1]:7.1f} ms", file=sys.stderr)
        finally:
            server.stop()

    print(f"\n{args.model}: {args.clients} client threads, {args.rounds} rounds of "
          f"{args.seconds:g} s, medians\n")
    print("| protocol | rows/request | rows/s | p99 latency (ms) |")
    print("| --- | ---: | ---: | ---: |")
    for (name, rows), runs in results.items():
        rate = statistics.median(r[0] for r in runs)
        p99 = statistics.median(r[1] for r in runs)
        print(f"| {name} | {rows} | {rate:,.0f} | {p99:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
