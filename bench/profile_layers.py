"""Per-layer time of one training step (forward, backward, update), in execution order.

    python bench/profile_layers.py --arch keras-cnn --batch 128

For finding where a network's step goes; bench/train_speed.py measures whole runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


def keras_cnn():
    """The Keras-example CNN the issue's PyTorch baseline trains."""
    return [Reshape([28, 28, 1]), Conv2D(32, 3), ReLU(), Conv2D(64, 3), ReLU(), MaxPool2D(2),
            Dropout(0.25), Flatten(), Dense(128), ReLU(), Dropout(0.5), Dense(10)]


ARCHS = {"keras-cnn": keras_cnn, "default-cnn": digits_cnn, "mlp": digits_mlp}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", choices=sorted(ARCHS), default="keras-cnn")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=12)
    args = ap.parse_args()
    net = Sequential(ARCHS[args.arch](), input_shape=(28, 28)).build(seed=0)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, args.batch)
    loss, opt = SoftmaxCrossEntropy(), Adam()
    plan = net._plan
    fwd = {i: [] for i in range(len(plan))}
    bwd = {i: [] for i in range(len(plan))}
    upd = []
    for _ in range(args.steps):
        h = x
        for i, layer in enumerate(plan):
            t0 = time.perf_counter()
            h = layer.forward(h)
            fwd[i].append(time.perf_counter() - t0)
        _, g = loss(h, y)
        for i in reversed(range(len(plan))):
            t0 = time.perf_counter()
            g = plan[i].backward(g)
            bwd[i].append(time.perf_counter() - t0)
            if g is None:
                break
        t0 = time.perf_counter()
        opt.step(net.parameters())
        upd.append(time.perf_counter() - t0)

    def ms(values: list[float]) -> float:
        return statistics.median(values[2:]) * 1e3 if len(values) > 2 else 0.0

    total = 0.0
    print(f"{args.arch}, batch {args.batch}, median of {args.steps - 2} steps")
    for i, layer in enumerate(plan):
        f, b = ms(fwd[i]), ms(bwd[i])
        total += f + b
        print(f"{i:3d} {layer!r:40s} forward {f:7.2f} ms  backward {b:7.2f} ms")
    total += ms(upd)
    print(f"    optimizer {ms(upd):.2f} ms; step {total:.1f} ms = "
          f"{args.batch / total * 1e3:,.0f} samples/s")


if __name__ == "__main__":
    main()
