"""Inference speed of our ``Predictor`` beside onnxruntime on the exported graph, both on one
thread, for the committed models on real inputs of 1, 32 and 256 rows.

    python bench/onnx_speed.py --rounds 15

Both run in this process, interleaved (each round times every configuration of both once,
in alternating order), and the tables report medians over rounds, because the machine is
shared. Ours: one BLAS thread (threadpoolctl), ``Predictor.predict`` as the service calls it
(input checks included) and ``predict_checked`` (the computation alone); onnxruntime:
``intra_op_num_threads=1``, default graph optimisations. Then where our time goes: each step
of ``predict_checked`` timed on its own (``--no-profile`` skips this).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from threadpoolctl import threadpool_info, threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model import Predictor, load_artifact  # noqa: E402
from model.activations import softmax  # noqa: E402
from training.datasets import load_housing, read_idx  # noqa: E402
from training.export.onnx_model import build_model  # noqa: E402
from training.export.verify import session  # noqa: E402

SIZES = (1, 32, 256)


def inputs(name: str, n: int) -> np.ndarray:
    """n real rows: housing rows (the file cycled), bundled training digits as float32."""
    if name == "housing":
        x = load_housing(ROOT / "data" / "housing" / "housing.data").X
        return np.resize(x, (n, 13)).astype(np.float32)
    images = read_idx(ROOT / "data" / "mnist-train-10k" / "train-images-idx3-ubyte.gz")
    return images[:n].astype(np.float32)


def per_call(fn, budget: float = 0.05) -> float:
    """Seconds per call of fn, timed over enough calls to fill ``budget`` seconds."""
    fn()
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    reps = max(1, int(budget / max(once, 1e-7)))
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def profile(predictor: Predictor, x: np.ndarray, rounds: int) -> list[tuple[str, float]]:
    """Median microseconds of each step of ``predict_checked`` on x, run on its own."""
    steps: list[tuple[str, object]] = [("checks (find_problems)", lambda: predictor.check(x))]
    pre = predictor.pipeline.transform(x)
    steps.append(("preprocessing", lambda: predictor.pipeline.transform(x)))
    h = pre.reshape(len(x), *predictor.artifact.network.input_shape)
    copies = {}
    for i, layer in enumerate(predictor.artifact.network._plan):
        # infer may work in place, so each call gets a fresh copy, whose time is subtracted
        h_in = h.copy()
        steps.append((f"{i} {layer!r}", lambda layer=layer, h_in=h_in: layer.infer(h_in.copy())))
        copies[f"{i} {layer!r}"] = lambda h_in=h_in: h_in.copy()
        h = layer.infer(h.copy())
    if predictor.task == "classification":
        steps.append(("softmax", lambda: softmax(h.copy())))
    elif predictor.target is not None:
        steps.append(("target inverse", lambda: predictor.target.inverse(h[:, 0])))
    times = {name: [] for name, _ in steps}
    for _ in range(rounds):
        for name, fn in steps:
            copy = per_call(copies[name], 0.02) if name in copies else 0.0
            times[name].append(per_call(fn, 0.02) - copy)
    return [(name, statistics.median(t) * 1e6) for name, t in times.items()]


def ort_profile(model_bytes: bytes, x: np.ndarray, calls: int = 30) -> list[tuple[str, float]]:
    """Median microseconds of each node onnxruntime runs on x (its own profiler), after
    its graph optimisations (fused nodes appear under their fused names)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    sess = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(calls):
        sess.run(None, feed)
    trace = Path(sess.end_profiling())
    events = json.loads(trace.read_text())
    shutil.rmtree(trace.parent, ignore_errors=True)
    per_node: dict[str, list[float]] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            name = f"{e['args'].get('op_name', '?')} {e['name'].removesuffix('_kernel_time')}"
            per_node.setdefault(name, []).append(float(e["dur"]))
    return [(name, statistics.median(d)) for name, d in per_node.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--models", nargs="+", default=["housing", "mnist"])
    ap.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()

    with threadpool_limits(1):
        blas = [(i["internal_api"], i.get("architecture"), i["num_threads"], i["version"])
                for i in threadpool_info()]
        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                    if ln.startswith("model name")), platform.processor())
        print(f"# {cpu}; Python {platform.python_version()}, NumPy {np.__version__}, "
              f"onnxruntime {ort.__version__}; BLAS {blas}")
        configs = []
        for name in args.models:
            artifact = load_artifact(ROOT / "artifacts" / name / "1")
            predictor = Predictor(artifact)
            sess = session(build_model(artifact), threads=1)
            feed_name = sess.get_inputs()[0].name
            for n in SIZES:
                x = inputs(name, n)
                checked = predictor.check(x)
                configs.append(((name, n), {
                    "ours": lambda p=predictor, x=x: p.predict(x),
                    "ours, compute only": lambda p=predictor, c=checked: p.predict_checked(c),
                    "onnxruntime": lambda s=sess, f=feed_name, x=x: s.run(None, {f: x}),
                }))
        times = {(key, impl): [] for key, fns in configs for impl in fns}
        for r in range(args.rounds):
            for key, fns in configs:
                order = list(fns.items())
                for impl, fn in (order if r % 2 == 0 else order[::-1]):
                    times[(key, impl)].append(per_call(fn))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

        print(f"\nmedian of {args.rounds} interleaved rounds, microseconds per call "
              "(rows/s in brackets)\n")
        print("| model | rows | ours: Predictor.predict | ours: compute only | "
              "onnxruntime | ours / onnxruntime |")
        print("|---|---|---|---|---|---|")
        for (name, n), fns in configs:
            med = {impl: statistics.median(times[((name, n), impl)]) for impl in fns}
            cells = [f"{med[i] * 1e6:,.0f} ({n / med[i]:,.0f})" for i in fns]
            print(f"| {name} | {n} | {' | '.join(cells)} | "
                  f"{med['ours'] / med['onnxruntime']:.2f}x |")

        if args.profile:
            for name in args.models:
                artifact = load_artifact(ROOT / "artifacts" / name / "1")
                predictor = Predictor(artifact)
                model_bytes = build_model(artifact).SerializeToString()
                for n in (1, 256):
                    print(f"\n{name}, {n} rows: where Predictor.predict's time goes "
                          "(median us, each step alone)\n")
                    for step, us in profile(predictor, inputs(name, n), 5):
                        print(f"    {us:10.1f}  {step}")
                    print(f"\n{name}, {n} rows: onnxruntime's nodes (median us, its profiler; "
                          "nodes under 1% of the total left out)\n")
                    nodes = ort_profile(model_bytes, inputs(name, n))
                    total = sum(us for _, us in nodes)
                    for node, us in nodes:
                        if us >= 0.01 * total:
                            print(f"    {us:10.1f}  {node}")
                    print(f"    {total:10.1f}  total of all {len(nodes)} nodes")


if __name__ == "__main__":
    main()
