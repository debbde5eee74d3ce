"""The training loop: seeded mini-batches, per-epoch validation, early stopping."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from model import Loss, Optimizer, Sequential

from .parallel import DataParallel, Transform, default_threads

#: maps the network's outputs on the validation set to a scalar metric
Metric = Callable[[np.ndarray], float]


@dataclass
class History:
    """Per-epoch records and where the best validation score was."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    threads: int = 1  # threads each step ran on (training/parallel.py)

    @property
    def best(self) -> dict[str, float]:
        return self.epochs[self.best_epoch - 1]


@dataclass
class FitConfig:
    """What ``fit`` needs besides the data: batch size, epochs, patience, seed."""

    epochs: int
    batch_size: int = 128
    patience: int | None = 10  # epochs without val improvement before stopping; None = never
    seed: int = 0
    min_delta: float = 0.0  # improvement smaller than this does not count
    min_epochs: int = 0  # epochs before a best epoch may be chosen or stopping may start
    restore_best: bool = True  # False: keep the last epoch's weights (e.g. after a schedule)
    progress: bool | None = None  # None: a bar only on a terminal
    desc: str = "train"
    threads: int | None = None  # threads per step; None: what the network is worth


def fit(net: Sequential, optimizer: Optimizer, loss: Loss, x: np.ndarray, y: np.ndarray,
        x_val: np.ndarray, y_val: np.ndarray, config: FitConfig, metric: Metric,
        metric_name: str, higher_is_better: bool,
        batch_transform: Transform | None = None,
        val_transform: Callable[[np.ndarray], np.ndarray] | None = None) -> History:
    """Train ``net`` in place; keep the weights of the epoch with the best validation metric.

    x, y: raw training inputs and targets as the loss sees them; each batch passes through
    ``batch_transform`` (augmentation + preprocessing) when given. After every epoch the
    outputs ``net.infer(val_transform(x_val))`` give the validation loss (against y_val, in
    the same space as y) and ``metric(outputs)`` (which knows its own targets, e.g. in the
    original unit). Stops when the metric has not improved for ``patience`` epochs and
    restores the best weights.
    """
    threads = config.threads if config.threads is not None else default_threads(net)
    with DataParallel(net, threads) as trainer:
        history = _fit(net, trainer, optimizer, loss, x, y, x_val, y_val, config, metric,
                       metric_name, higher_is_better, batch_transform, val_transform)
    history.threads = threads
    return history


def _fit(net: Sequential, trainer: DataParallel, optimizer: Optimizer, loss: Loss,
         x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, config: FitConfig,
         metric: Metric, metric_name: str, higher_is_better: bool,
         batch_transform: Transform | None,
         val_transform: Callable[[np.ndarray], np.ndarray] | None) -> History:
    rng = np.random.default_rng(config.seed)
    # one augmentation stream per thread (the shuffling stays on rng)
    shard_rngs = [rng] if trainer.threads == 1 else rng.spawn(trainer.threads)
    xv = val_transform(x_val) if val_transform else x_val
    sign = 1.0 if higher_is_better else -1.0
    best_score, best_weights, since_best = -math.inf, None, 0
    history = History()
    start = time.perf_counter()
    n = len(x)
    bar = tqdm(range(1, config.epochs + 1), desc=config.desc, unit="epoch",
               disable=(not config.progress) if config.progress is not None else None,
               leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        order = rng.permutation(n)
        total, batches = 0.0, 0
        for i in range(0, n, config.batch_size):
            idx = order[i:i + config.batch_size]
            total += trainer.train_step(x[idx], y[idx], loss, optimizer, batch_transform,
                                        shard_rngs)
            batches += 1
        val_out = net.infer(xv)
        score = metric(val_out)
        record = {"epoch": epoch, "train_loss": total / batches,
                  "val_loss": loss(val_out.copy(), y_val)[0], f"val_{metric_name}": score,
                  "lr": optimizer.lr, "seconds": time.perf_counter() - t0}
        history.epochs.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.4f}", **{metric_name: f"{score:.4f}"})
        if epoch < config.min_epochs:
            pass
        elif sign * score > best_score + config.min_delta:
            best_score, since_best = sign * score, 0
            best_weights = {k: v.copy() for k, v in net.get_weights().items()}
            history.best_epoch = epoch
        else:
            since_best += 1
            if config.patience is not None and since_best >= config.patience:
                history.stopped_early = True
                break
    bar.close()
    if best_weights is not None and config.restore_best:
        net.set_weights(best_weights)
    history.seconds = time.perf_counter() - start
    return history


def accuracy(labels: np.ndarray) -> Metric:
    """Metric: the share of rows whose largest output is the label."""
    return lambda outputs: float(np.mean(outputs.argmax(axis=1) == labels))


def history_summary(history: History) -> dict[str, Any]:
    """What the manifest records about a run."""
    return {"epochs_run": len(history.epochs), "best_epoch": history.best_epoch,
            "stopped_early": history.stopped_early, "seconds": round(history.seconds, 2),
            "threads": history.threads}
