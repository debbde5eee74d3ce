"""Where a training step's time goes: per layer and phase, GEMMs apart, against the GEMM rate.

    python bench/profile_layers.py --arch keras-cnn --batch 128

Every layer's forward and backward is timed; inside them, each ``np.matmul`` is timed and
its FLOPs counted, so a Conv2D splits into its GEMMs and the rest (im2col, col2im). The
batch gather, the augmentation (default CNN recipe), the loss and the optimizer are timed
too. The GEMM rate of the machine is measured in the same process (a large square SGEMM
and the step's own GEMM shapes), so the distance of the step to its GEMM-bound limit is a
number. For finding where a step goes; bench/train_speed.py measures whole runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import model.conv  # noqa: E402
import model.layers  # noqa: E402
from model import (  # noqa: E402
    Adam,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    ReLU,
    Reshape,
    Sequential,
    SoftmaxCrossEntropy,
)
from training.architectures import digits_cnn, digits_mlp  # noqa: E402
from training.augment import distort  # noqa: E402
from training.mnist import AUGMENTATION  # noqa: E402


def keras_cnn():
    """The Keras-example CNN the issue's PyTorch baseline trains."""
    return [Reshape([28, 28, 1]), Conv2D(32, 3), ReLU(), Conv2D(64, 3), ReLU(), MaxPool2D(2),
            Dropout(0.25), Flatten(), Dense(128), ReLU(), Dropout(0.5), Dense(10)]


ARCHS = {"keras-cnn": keras_cnn, "default-cnn": digits_cnn, "mlp": digits_mlp}


class GemmClock:
    """Times every np.matmul the model modules make, per phase (seconds and FLOPs)."""

    def __init__(self) -> None:
        self.phase = "?"
        self.seconds: dict[str, float] = defaultdict(float)
        self.flops: dict[str, float] = defaultdict(float)

    def matmul(self, a, b, *args, **kwargs):
        t0 = time.perf_counter()
        out = np.matmul(a, b, *args, **kwargs)
        self.seconds[self.phase] += time.perf_counter() - t0
        self.flops[self.phase] += 2.0 * a.size * b.shape[-1]
        return out

    def install(self) -> None:
        """Route the model modules' ``np`` through this clock (numpy itself is untouched)."""
        shim = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np)
                                        if not k.startswith("__")})
        shim.matmul = self.matmul
        for module in (model.conv, model.layers):
            module.np = shim


def gemm_rate(shapes: list[tuple[int, int, int]], repeat: int = 5) -> float:
    """Median GFLOP/s of float32 GEMMs of the given (m, k, n) shapes, run back to back."""
    rng = np.random.default_rng(0)
    mats = [(rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32),
             np.empty((m, n), np.float32)) for m, k, n in shapes]
    flops = sum(2.0 * m * k * n for m, k, n in shapes)
    rates = []
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        for a, b, c in mats:
            np.matmul(a, b, out=c)
        rates.append(flops / (time.perf_counter() - t0) / 1e9)
    return statistics.median(rates[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", choices=sorted(ARCHS), default="keras-cnn")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=12)
    args = ap.parse_args()
    from threadpoolctl import threadpool_info

    net = Sequential(ARCHS[args.arch](), input_shape=(28, 28)).build(seed=0)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (10_000, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, len(data))
    scaled = data.astype(np.float32) / np.float32(255)

    def augmented(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = distort(batch, rng, AUGMENTATION)
        out *= np.float32(1 / 255)
        return out

    loss, opt = SoftmaxCrossEntropy(), Adam()
    plan = net._plan
    clock = GemmClock()
    clock.install()
    times: dict[str, list[float]] = defaultdict(list)
    gemm: dict[str, list[float]] = defaultdict(list)
    shapes: list[tuple[int, int, int]] = []
    augment = args.arch == "default-cnn"

    def timed(name: str, fn, *a):
        clock.phase = name
        before = clock.seconds[name]
        t0 = time.perf_counter()
        out = fn(*a)
        times[name].append(time.perf_counter() - t0)
        gemm[name].append(clock.seconds[name] - before)
        return out

    for step in range(args.steps):
        idx = rng.permutation(len(data))[:args.batch]
        if augment:  # as the trainer: raw pixels are distorted, then scaled
            xb = timed("batch gather", np.take, data, idx, 0)
            xb = timed("augmentation (distort, scale)", augmented, xb, rng)
        else:  # as bench/train_speed.py: a gather from pre-scaled float32 images
            xb = timed("batch gather", np.take, scaled, idx, 0)
        h = xb
        for i, layer in enumerate(plan):
            h = timed(f"{i:2d} {layer!r} forward", layer.forward, h)
        _, g = timed("softmax cross-entropy", loss, h, labels[idx])
        for i in reversed(range(len(plan))):
            g = timed(f"{i:2d} {plan[i]!r} backward", plan[i].backward, g)
            if g is None:
                break
        timed("optimizer (Adam)", opt.step, net.parameters())
        if step == 0:  # the step's GEMM shapes, for the rate they run at alone
            shapes = []
            for layer in plan:
                if isinstance(layer, Conv2D | Dense):
                    m = args.batch * int(np.prod(layer.output_shape[:-1]))
                    k, n = int(np.prod(layer.params["W"].shape[:-1])), layer.params["W"].shape[-1]
                    shapes += [(m, k, n), (k, m, n)] + ([(m, n, k)] if layer.needs_input_grad
                                                        else [])
    skip = 2 if args.steps > 4 else 0
    med = {k: statistics.median(v[skip:]) * 1e3 for k, v in times.items()}
    gmed = {k: statistics.median(v[skip:]) * 1e3 for k, v in gemm.items()}
    total = sum(med.values())
    total_gemm = sum(gmed.values())
    step_flops = sum(clock.flops.values()) / args.steps
    square = gemm_rate([(2048, 2048, 2048)])
    own = gemm_rate(shapes)
    kernel = ", ".join(f"{i.get('internal_api')} {i.get('architecture')} x{i.get('num_threads')}"
                       for i in threadpool_info() if i.get("user_api") == "blas")
    print(f"{args.arch}, batch {args.batch}, median of {args.steps - skip} steps, BLAS: {kernel}")
    print("\n| phase | ms | of which GEMM ms | rest ms | share of step |")
    print("|---|---|---|---|---|")
    for name, ms in med.items():
        if ms >= 0.005:
            print(f"| {name} | {ms:.2f} | {gmed[name]:.2f} | {ms - gmed[name]:.2f} | "
                  f"{ms / total:.1%} |")
    print(f"| **step** | **{total:.1f}** | **{total_gemm:.1f}** | **{total - total_gemm:.1f}** "
          f"| {args.batch / total * 1e3:,.0f} samples/s |")
    print(f"\nGEMM work per step {step_flops / 1e9:.2f} GFLOP, run at "
          f"{step_flops / total_gemm / 1e6:.1f} GFLOP/s inside the step; measured alone: "
          f"the same shapes {own:.1f} GFLOP/s, square 2048 SGEMM {square:.1f} GFLOP/s.")
    limit = step_flops / (square * 1e9) * 1e3
    print(f"GEMM-bound limit at the square rate: {limit:.1f} ms a step "
          f"({args.batch / limit * 1e3:,.0f} samples/s); this step is {total / limit:.2f}x it.")


if __name__ == "__main__":
    main()
