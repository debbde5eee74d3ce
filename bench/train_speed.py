"""Training speed of the NumPy library beside the reference implementations, in one run.

Contenders run as fresh subprocesses, interleaved round by round (ours, the plain and tuned
NumPy references, PyTorch), so machine noise hits all of them alike; the table reports
medians over rounds. Training time covers the optimisation loop only (shuffle, batch
gather, forward, backward, update), test accuracy is measured with the clock stopped:
the same protocol as ../shared/bench.

Every round runs under two OpenBLAS kernel settings: "native" (OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE removed from the environment, so OpenBLAS picks the kernel for this CPU, as
users run it) and "forced" (OPENBLAS_CORETYPE=Haswell, as some of the project's machines set
it). The kernel each run really got is read back from threadpoolctl and printed.

    python bench/train_speed.py --model mlp cnn --rounds 3 \
        --torch-python /tmp/torch-venv/bin/python [--checkout /tmp/before]

The PyTorch side needs a separate venv with `pip install torch==2.13.0` (never a project
dependency). References are read from ../shared/bench (never copied into this repository).
``--checkout`` adds our library from another checkout (e.g. the commit before a change) as
one more contender in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
#: ../shared beside this checkout; the driver passes its own to runs of other checkouts
SHARED = Path(os.environ.get("TRAIN_SPEED_SHARED", ROOT.parent / "shared"))
sys.path.insert(0, str(ROOT))


# -- our contender (runs in a subprocess: --worker) -------------------------------------
def _load_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from training.datasets import read_idx

    train = SHARED / "data" / "mnist-train-10k"
    if not train.is_dir():
        train = ROOT / "data" / "mnist-train-10k"
    test = SHARED / "data" / "mnist"
    return (read_idx(train / "train-images-idx3-ubyte.gz"),
            read_idx(train / "train-labels-idx1-ubyte.gz"),
            read_idx(test / "t10k-images-idx3-ubyte.gz"),
            read_idx(test / "t10k-labels-idx1-ubyte.gz"))


def build(model: str, seed: int):
    """The reference recipes: Keras MLP (glorot, RMSprop) and the Keras-example CNN (Adam)."""
    from model import (
        Adam,
        Conv2D,
        Dense,
        Dropout,
        Flatten,
        MaxPool2D,
        ReLU,
        Reshape,
        RMSprop,
        Sequential,
    )

    if model == "mlp":
        layers = [Flatten(), Dense(512, kernel_initializer="glorot_uniform"), ReLU(),
                  Dense(10, kernel_initializer="glorot_uniform")]
        opt = RMSprop(1e-3, rho=0.9, epsilon=1e-7)
    else:
        layers = [Reshape([28, 28, 1]), Conv2D(32, 3), ReLU(), Conv2D(64, 3), ReLU(),
                  MaxPool2D(2), Dropout(0.25), Flatten(), Dense(128), ReLU(), Dropout(0.5),
                  Dense(10)]
        opt = Adam(1e-3)
    return Sequential(layers, input_shape=(28, 28)).build(seed=seed), opt


def wait_quiet(threshold: float = 0.05, window: float = 2.0, max_wait: float = 120.0) -> float:
    """Wait until other processes use < threshold of the machine (or max_wait passes)."""
    def busy() -> tuple[int, int]:
        with open("/proc/stat") as f:
            vals = list(map(int, f.readline().split()[1:9]))
        return sum(vals) - vals[3] - vals[4], sum(vals)

    deadline = time.time() + max_wait
    while True:
        b0, t0 = busy()
        own0 = os.times()
        time.sleep(window)
        b1, t1 = busy()
        own1 = os.times()
        hz = os.sysconf("SC_CLK_TCK")
        own = (own1.user - own0.user + own1.system - own0.system) * hz
        other = max(0.0, (b1 - b0) - own) / max(t1 - t0, 1)
        if other < threshold or time.time() > deadline:
            return other


def blas_kernel() -> str:
    """The BLAS library and kernel (OpenBLAS "architecture") NumPy runs with right now."""
    from threadpoolctl import threadpool_info

    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}"
                     for i in blas) or "unknown"


def worker(model: str, epochs: int, seed: int, max_wait: float = 120.0) -> dict:
    """Train once with our library and return timing and accuracy."""
    from model import SoftmaxCrossEntropy
    from training.parallel import DataParallel, default_threads

    xtr, ytr, xte, yte = _load_digits()
    x = xtr.astype(np.float32) / np.float32(255.0)
    xt = xte.astype(np.float32) / np.float32(255.0)
    y = ytr.astype(np.int64)
    # untimed warm-up on a throwaway network (allocations, BLAS threads)
    warm, wopt = build(model, seed + 1000)
    for _ in range(3):
        warm.train_step(x[:128], y[:128], SoftmaxCrossEntropy(), wopt)
    del warm, wopt
    other = wait_quiet(max_wait=max_wait)
    net, opt = build(model, seed)
    # as the trainer runs it: a CNN step on every usable CPU (training/parallel.py)
    trainer = DataParallel(net, default_threads(net))
    loss = SoftmaxCrossEntropy()
    rng = np.random.default_rng(seed)
    batch = 128
    xb = np.empty((batch, 28, 28), np.float32)
    epoch_s, accs = [], []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            trainer.train_step(np.take(x, idx, axis=0, out=xb[:len(idx)]), y[idx], loss, opt)
        epoch_s.append(time.perf_counter() - t0)
        accs.append(float((net.infer(xt).argmax(axis=1) == yte).mean()))
    train_s = sum(epoch_s)
    trainer.close()
    return {"samples_per_s": epochs * len(x) / train_s, "train_s": train_s, "acc": accs[-1],
            "threads": trainer.threads, "epoch_s": epoch_s, "other_cpu_before": other,
            "kernel": blas_kernel()}


# -- the driver --------------------------------------------------------------------------
#: OpenBLAS settings each round runs under; "native" removes the variables altogether.
KERNELS = {"native": {}, "forced": {"OPENBLAS_CORETYPE": "Haswell"}}
_KERNEL_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def kernel_env(kernel: str, l2_size: str | None) -> dict[str, str]:
    """The environment of a contender run under one kernel setting."""
    env = {k: v for k, v in os.environ.items() if k not in _KERNEL_VARS}
    env.update(KERNELS[kernel])
    if kernel == "forced" and l2_size:
        env["OPENBLAS_L2_SIZE"] = l2_size
    return env


def cpu_model() -> str:
    """The CPU from /proc/cpuinfo: model name, family/model and the widest vector extension.

    A virtual machine may show only "AMD EPYC"; family and model then tell the generation.
    """
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text()
                    .split("\n\n")[0].splitlines() if ":" in line)
    except OSError:
        return platform.processor() or platform.machine()
    info = {k.strip(): v.strip() for k, v in info.items()}
    flags = info.get("flags", "").split()
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    return (f"{info.get('model name', platform.machine())} (family {info.get('cpu family')}, "
            f"model {info.get('model')}, {vector})")


def run_ours(model: str, epochs: int, seed: int, env: dict[str, str],
             script: Path = Path(__file__)) -> dict:
    # the wait for a quiet machine goes through the environment: older checkouts ignore it
    out = subprocess.run([sys.executable, str(script), "--worker", model, "--epochs",
                          str(epochs), "--seed", str(seed)], check=True, capture_output=True,
                         text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_reference(cmd: list[str], result_name: str, env: dict[str, str]) -> dict:
    with tempfile.TemporaryDirectory() as results:
        env = {**env, "RESULTS_DIR": results, "SHARED_DATA": str(SHARED / "data")}
        subprocess.run(cmd, check=True, capture_output=True, text=True, env=env,
                       cwd=SHARED / "bench")
        data = json.loads((Path(results) / f"{result_name}.json").read_text())
    return {"samples_per_s": data["samples_per_s_median"], "train_s": data["train_s_median"],
            "acc": data["acc_median"]}


def contenders(model: str, epochs: int, torch_python: str | None,
               checkout: Path | None) -> dict:
    """name -> function(seed, env) running one contender once."""
    bench = SHARED / "bench"
    runs = {"ours (model/)": lambda seed, env: run_ours(model, epochs, seed, env)}
    if checkout:
        runs[f"ours at {checkout}"] = lambda seed, env: run_ours(
            model, epochs, seed, env, checkout / "bench" / "train_speed.py")
    if model == "mlp":
        for variant in ("plain", "tuned"):
            runs[f"NumPy reference, {variant}"] = lambda seed, env, v=variant: run_reference(
                [sys.executable, str(bench / "numpy_mlp.py"), "--variant", v, "--epochs",
                 str(epochs), "--seeds", str(seed)], f"numpy_mnist10k_mlp_{v}", env)
    if torch_python:
        runs["PyTorch 2.13 CPU"] = lambda seed, env: run_reference(
            [torch_python, str(bench / "digits_torch.py"), "--data", "mnist10k", "--model",
             model, "--epochs", str(epochs), "--seeds", str(seed)], f"torch_mnist10k_{model}",
            env)
    return runs


def print_table(model: str, epochs: int, rounds: int, kernels: list[str],
                results: dict[str, dict[str, list[dict]]]) -> None:
    """Markdown table: one row per contender, samples/s per kernel setting side by side."""
    ours = "ours (model/)"
    print(f"\n{model.upper()}, {epochs} epochs on 10,000 MNIST digits, batch 128, "
          f"median of {rounds} interleaved rounds\n")
    head = " | ".join(f"{k}: samples/s median (min-max) | acc" for k in kernels)
    print(f"| implementation | {head} |")
    print("|---|" + "---|---|" * len(kernels))
    for name in results[kernels[0]]:
        cells = []
        for k in kernels:
            res = results[k][name]
            sps = [x["samples_per_s"] for x in res]
            cells.append(f"{statistics.median(sps):,.0f} ({min(sps):,.0f}-{max(sps):,.0f}) | "
                         f"{statistics.median(x['acc'] for x in res):.4f}")
        print(f"| {name} | {' | '.join(cells)} |")
    for k in kernels:
        mine = statistics.median(x["samples_per_s"] for x in results[k][ours])
        ratios = [f"{mine / statistics.median(x['samples_per_s'] for x in res):.2f}x {name}"
                  for name, res in results[k].items() if name != ours]
        kernel_names = sorted({x.get("kernel", "?") for x in results[k][ours]})
        print(f"\n{k} ({'; '.join(kernel_names)}): ours = {', '.join(ratios) or '-'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", nargs="+", choices=["mlp", "cnn"], default=["mlp", "cnn"])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repetitions (median)")
    ap.add_argument("--epochs-mlp", type=int, default=5)
    ap.add_argument("--epochs-cnn", type=int, default=2)
    ap.add_argument("--torch-python", help="python of a venv with torch==2.13.0")
    ap.add_argument("--kernels", nargs="+", choices=list(KERNELS), default=list(KERNELS),
                    help="OpenBLAS settings to run every round under (default: both)")
    ap.add_argument("--forced-l2-size", help="also set OPENBLAS_L2_SIZE in the forced runs")
    ap.add_argument("--checkout", type=Path,
                    help="another checkout of this project to run as one more contender")
    ap.add_argument("--json", type=Path, help="also write all runs to this file")
    ap.add_argument("--worker", choices=["mlp", "cnn"], help=argparse.SUPPRESS)
    ap.add_argument("--epochs", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--max-wait", type=float, default=120.0,
                    help="seconds our runs wait at most for a quiet machine (default 120)")
    args = ap.parse_args()
    if args.worker:
        max_wait = float(os.environ.get("TRAIN_SPEED_MAX_WAIT", args.max_wait))
        print(json.dumps(worker(args.worker, args.epochs, args.seed, max_wait)))
        return
    if not (SHARED / "bench").is_dir():
        sys.exit(f"reference implementations not found in {SHARED / 'bench'}")
    report: dict = {"machine": f"{cpu_model()}, {os.cpu_count()} cores, "
                               f"Python {platform.python_version()}, NumPy {np.__version__}",
                    "command": " ".join(sys.argv), "runs": {}}
    envs = {k: {**kernel_env(k, args.forced_l2_size),
                "TRAIN_SPEED_MAX_WAIT": str(args.max_wait), "TRAIN_SPEED_SHARED": str(SHARED)}
            for k in args.kernels}
    for model in args.model:
        epochs = args.epochs_mlp if model == "mlp" else args.epochs_cnn
        runs = contenders(model, epochs, args.torch_python, args.checkout)
        results = {k: {name: [] for name in runs} for k in args.kernels}
        jobs = [(k, name) for k in args.kernels for name in runs]
        for r in range(args.rounds):
            for k, name in jobs[r % len(jobs):] + jobs[:r % len(jobs)]:  # rotate the order
                res = runs[name](r, envs[k])
                results[k][name].append(res)
                threads = f", {res['threads']} threads" if "threads" in res else ""
                print(f"[{model} round {r + 1}, {k}] {name}: {res['samples_per_s']:,.0f} "
                      f"samples/s, acc {res['acc']:.4f} {res.get('kernel', '')}"
                      f"{threads}",
                      file=sys.stderr, flush=True)
        report["runs"][model] = results
        print_table(model, epochs, args.rounds, args.kernels, results)
    forced = " ".join(f"{k}={v}" for k, v in KERNELS["forced"].items())
    if args.forced_l2_size:
        forced += f" OPENBLAS_L2_SIZE={args.forced_l2_size}"
    print(f"\nmachine: {report['machine']}\nforced: {forced}\ncommand: {report['command']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
