"""What every training command shares: options, the training record, saving the artifact."""

from __future__ import annotations

import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model import Artifact, Optimizer, Predictor, Sequential, make_optimizer, save_artifact
from model.schedules import CosineDecay

from .report import code_version


def command_line(argv: list[str]) -> str:
    """The command as a person would type it again (quoted where needed)."""
    return shlex.join(["python", "-m", "training", *argv])


@dataclass
class TrainOptions:
    """Command-line options common to both tasks; None means "the task's default"."""

    data: Path
    out: Path
    seed: int = 0
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    weight_decay: float | None = None
    patience: int | None = None
    progress: bool | None = None
    threads: int | None = None
    command: str = field(default_factory=lambda: command_line(sys.argv[1:]))

    def resolved(self, defaults: dict[str, Any]) -> dict[str, Any]:
        """Hyper-parameters: the given options over the task's defaults."""
        given = {k: v for k, v in asdict(self).items()
                 if k in defaults and v is not None}
        return {**defaults, **given}


@dataclass
class TrainResult:
    """Where the new version went and what it scored."""

    path: Path
    metrics: dict[str, Any]


def build_optimizer(hp: dict[str, Any], steps_per_epoch: int) -> Optimizer:
    """The optimizer the hyper-parameters name; ``schedule: cosine`` decays over all epochs."""
    lr: Any = hp["lr"]
    if hp.get("schedule") == "cosine":
        total = hp["epochs"] * steps_per_epoch
        lr = CosineDecay(hp["lr"], total, alpha=0.01, warmup_steps=min(200, total // 10))
    return make_optimizer(hp["optimizer"], lr, weight_decay=hp["weight_decay"])


def in_memory_predictor(manifest: dict[str, Any], network: Sequential) -> Predictor:
    """A Predictor over a network that is not saved yet, so the metrics in the manifest
    come from exactly the code path that serves and evaluates the saved artifact."""
    full = {"name": "unsaved", "version": 1, **manifest,
            "input": {**manifest["input"], "shape": list(network.input_shape)}}
    return Predictor(Artifact(path=Path("<unsaved>"), manifest=full, network=network))


def training_record(hp: dict[str, Any], options: TrainOptions, started: float,
                    **extra: Any) -> dict[str, Any]:
    """The manifest's ``training`` section."""
    return {
        "command": options.command, "seed": options.seed, "hyperparameters": hp, **extra,
        "duration_seconds": round(time.time() - started, 1), "code_version": code_version(),
        "environment": {"python": platform.python_version(), "numpy": np.__version__,
                        "machine": platform.machine()},
    }


def save(options: TrainOptions, name: str, network: Sequential, manifest: dict[str, Any],
         curves: bytes) -> Path:
    """Write the artifact (and curves.png) as the next version of ``options.out/name``."""
    return save_artifact(options.out, name, network, manifest, extra_files={"curves.png": curves})
