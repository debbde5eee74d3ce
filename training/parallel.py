"""Data-parallel training steps: one batch split across threads, one update.

Half of a CNN step is NumPy work that runs on one core (im2col, col2im, pooling, ReLU,
dropout), and a two-thread BLAS call waits for its slower thread, so with the whole batch
on one thread a second core idles much of the step. Here each of ``threads`` threads runs
the forward and backward pass of its shard of the batch through its own replica of the
network (the same parameter arrays, its own gradients and buffers; ``Sequential.replica``)
with a single-threaded BLAS, the gradients are summed, and the optimizer makes one update.
NumPy and OpenBLAS release the GIL for the array work, so the threads run in parallel.

The update equals the whole-batch one up to float rounding: each shard's loss gradient is
weighted by its share of the batch, and the gradient sums run in a fixed order, so a run is
bitwise reproducible for a given seed and thread count. Dropout masks differ from a
one-thread run (each replica draws from its own stream, derived from the network's).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from types import TracebackType
from typing import TypeVar

import numpy as np
from threadpoolctl import ThreadpoolController

from model import Conv2D, Layer, Loss, Optimizer, Sequential
from model.optimizers import Param, part_bounds

#: Fewer rows than this per thread are not worth a hand-off: the shard runs on fewer threads.
MIN_SHARD_ROWS = 16

_controller: ThreadpoolController | None = None
T = TypeVar("T")

#: maps raw training rows to network inputs (augmentation + preprocessing), drawing from
#: the given generator
Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads(net: Sequential) -> int:
    """Threads a training step of ``net`` is worth: every usable CPU for a network with
    convolutions, one otherwise.

    Measured on 2 cores (docs/BENCHMARKS.md): a CNN step 1.4-1.5x faster on two threads; a
    784-512-10 MLP step (two BLAS calls and an update) no faster; a housing-sized one twice
    as slow, the hand-off costing more than the step.
    """
    return usable_cpus() if any(isinstance(layer, Conv2D) for layer in _all_layers(net)) else 1


def _all_layers(net: Sequential) -> list[Layer]:
    layers = []
    for layer in net.layers:
        layers.append(layer)
        for member in getattr(layer, "members", ()):
            layers.extend(_all_layers(member))
    return layers


def _blas() -> ThreadpoolController:
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller


def shard_bounds(n: int, threads: int) -> list[tuple[int, int]]:
    """Row ranges of at most ``threads`` shards of n rows, sizes differing by at most one."""
    count = max(1, min(threads, n // MIN_SHARD_ROWS))
    edges = [round(i * n / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _sum_gradients(params: list[Param], twins: list[list[Param]], part: int, parts: int) -> None:
    """Add the replicas' gradients into the network's, over one flat slice of each."""
    for i, own in enumerate(params):
        lo, hi = part_bounds(own.grad.size, part, parts)
        total = own.grad.reshape(-1)[lo:hi]
        for twin in twins:
            np.add(total, twin[i].grad.reshape(-1)[lo:hi], out=total)


class DataParallel:
    """``train_step`` of a built network over ``threads`` threads (1: the network's own).

    >>> with DataParallel(net, threads=2) as trainer:
    ...     loss_value = trainer.train_step(x, y, loss, optimizer)
    """

    def __init__(self, net: Sequential, threads: int) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.net = net
        self.threads = threads
        self._replicas = [net] + [net.replica() for _ in range(threads - 1)]
        self._pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="train-shard") \
            if threads > 1 else None

    def train_step(self, x: np.ndarray, y: np.ndarray, loss: Loss, optimizer: Optimizer,
                   transform: Transform | None = None,
                   rngs: Sequence[np.random.Generator] = ()) -> float:
        """One update from the whole batch; returns the batch's mean loss.

        ``transform(rows, rng)`` (augmentation, preprocessing) maps raw rows to network
        inputs on each shard's own thread, shard k drawing from ``rngs[k]`` (one generator
        per thread).
        """
        bounds = shard_bounds(len(x), self.threads)
        if transform is not None and len(rngs) < self.threads:
            raise ValueError(f"a transform needs {self.threads} generators, got {len(rngs)}")
        if len(bounds) == 1 or self._pool is None:
            if transform is not None:
                x = transform(x, rngs[0])
            return self.net.train_step(x, y, loss, optimizer)
        n = len(x)

        def shard(k: int) -> float:
            start, stop = bounds[k]
            replica = self._replicas[k]
            rows = x[start:stop] if transform is None else transform(x[start:stop], rngs[k])
            value, grad = loss(replica.forward(rows), y[start:stop])
            share = (stop - start) / n
            grad *= grad.dtype.type(share)  # the shard's part of the whole batch's mean
            replica.backward(grad)
            return value * share

        with _blas().limit(limits=1, user_api="blas"):
            total = sum(self._run([partial(shard, k) for k in range(len(bounds))]))
        params = self.net.parameters()
        twins = [r.parameters() for r in self._replicas[1:len(bounds)]]
        self._run([partial(_sum_gradients, params, twins, k, self.threads)
                   for k in range(self.threads)])
        optimizer.step(params, parts=self.threads, run=self._run)
        return total

    def _run(self, jobs: list[Callable[[], T]]) -> list[T]:
        """Run the jobs at once, the first on this thread; their results in order."""
        others = [self._pool.submit(job) for job in jobs[1:]]
        first = jobs[0]()
        return [first, *(future.result() for future in others)]

    def close(self) -> None:
        """Stop the worker threads."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> DataParallel:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
