"""Train the MNIST digit classifier (a CNN by default) from IDX files."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model import SoftmaxCrossEntropy
from model.preprocessing import Pipeline, Scale

from .architectures import digits_network
from .augment import Distortion, distort
from .datasets import ExtraDigits, load_digits, load_extra_digits, random_split
from .errors import DataError
from .loop import FitConfig, accuracy, fit, history_summary
from .report import classification_metrics, curves_png
from .run import (
    TrainOptions,
    TrainResult,
    build_optimizer,
    in_memory_predictor,
    save,
    training_record,
)

NAME = "mnist"
PIXEL_RANGE = (0, 255)
#: the distortion used with --augment: +-2 px shifts, +-12 degrees, +-10% scale, and a
#: smooth elastic displacement of up to 2.5 px
AUGMENTATION = Distortion(max_shift=2.0, max_rotation=12.0, max_scale=0.1, elastic_alpha=2.5,
                          elastic_sigma=4.0)
DEFAULTS: dict[str, dict[str, Any]] = {
    "cnn": {"epochs": 40, "batch_size": 128, "optimizer": "adam", "lr": 2e-3,
            "weight_decay": 0.0, "patience": 0, "schedule": "cosine",
            "val_fraction": 0.05, "test_fraction": 0.1},
    "mlp": {"epochs": 20, "batch_size": 128, "optimizer": "rmsprop", "lr": 1e-3,
            "weight_decay": 0.0, "patience": 0, "schedule": "cosine",
            "val_fraction": 0.05, "test_fraction": 0.1},
}


def training_split(images: np.ndarray, labels: np.ndarray, train: np.ndarray,
                   extras: Sequence[ExtraDigits]) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) the network trains on: rows ``train`` of the data, then every extra
    folder's digits. Extra digits join the training split only, never validation or test."""
    x, y = [images[train]], [labels[train]]
    for extra in extras:
        x.append(extra.images)
        y.append(extra.labels.astype(labels.dtype))
    return np.concatenate(x), np.concatenate(y)


def train(options: TrainOptions, arch: str = "cnn", augment: bool = True,
          extra_data: Sequence[Path] = ()) -> TrainResult:
    """Fit a digit classifier on ``options.data`` and save it as a new version.

    With ``t10k-*`` files in the folder they are the test set; otherwise a seeded slice of
    the training files is. A seeded slice of the rest validates after every epoch. With a
    patience (> 0) training stops early and keeps the best validation epoch; by default the
    learning rate follows a cosine schedule to the last epoch, whose weights are kept.
    Each ``extra_data`` folder's train pair (e.g. ``data/typeset-digits``) is added to the
    training split only: the validation and test sets are drawn from ``options.data``
    alone, exactly as without extra data.
    """
    started = time.time()
    hp = options.resolved(DEFAULTS[arch])
    hp.update(arch=arch, augment=augment)
    data = load_digits(options.data)
    images, labels = data.train_images, data.train_labels.astype(np.int64)
    has_test = data.test_images is not None
    try:
        split = random_split(len(images), test_fraction=0.0 if has_test else hp["test_fraction"],
                             val_fraction=hp["val_fraction"], seed=options.seed)
    except ValueError as exc:
        raise DataError(options.data, str(exc)) from None
    if has_test:
        x_test, y_test = data.test_images, data.test_labels.astype(np.int64)
        test_source = "t10k files"
    else:
        x_test, y_test = images[split.test], labels[split.test]
        test_source = f"seeded {hp['test_fraction']:.0%} slice of the training files"
    if augment:
        hp["distortion"] = AUGMENTATION.to_dict()
    extras = [load_extra_digits(folder, data.image_shape) for folder in extra_data]
    x_train, y_train = training_split(images, labels, split.train, extras)

    pipeline = Pipeline([Scale(1 / 255)])
    distortion = AUGMENTATION if augment else None

    def batch_transform(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if distortion is not None:
            batch = distort(batch, rng, distortion)
        return pipeline.transform(batch)

    net = digits_network(arch, data.image_shape, seed=options.seed)
    steps = -(-len(y_train) // hp["batch_size"])
    patience = hp["patience"] or None
    config = FitConfig(epochs=hp["epochs"], batch_size=hp["batch_size"], patience=patience,
                       seed=options.seed, progress=options.progress, threads=options.threads,
                       restore_best=patience is not None, desc=f"mnist {arch}")
    history = fit(net, build_optimizer(hp, steps), SoftmaxCrossEntropy(), x_train, y_train,
                  images[split.val], labels[split.val], config,
                  accuracy(labels[split.val]), "accuracy", higher_is_better=True,
                  batch_transform=batch_transform,
                  val_transform=pipeline.transform)

    h, w = data.image_shape
    manifest: dict[str, Any] = {
        "task": "classification",
        "input": {"name": "images", "range": list(PIXEL_RANGE),
                  "description": f"{h}x{w} grey-scale image, pixels 0..255, white digit on "
                                 "black background (MNIST convention)"},
        "output": {"labels": [str(i) for i in range(10)],
                   "description": "probability of each digit 0-9"},
        "preprocessing": {"input": pipeline.get_config()},
    }
    predictor = in_memory_predictor(manifest, net)
    metrics = {
        "validation": classification_metrics(predictor.predict(images[split.val]),
                                              labels[split.val], 10),
        "test": classification_metrics(predictor.predict(x_test), y_test, 10),
    }
    manifest["metrics"] = metrics
    manifest["training"] = training_record(
        hp, options, started,
        data={"folder": str(options.data), "sha256": data.sha256, "test_set": test_source,
              **({"extra_training_data": [
                  {"folder": str(e.folder), "sha256": e.sha256, "digits": int(len(e.labels))}
                  for e in extras]} if extras else {})},
        samples={"train": int(len(y_train)), "validation": int(split.val.size),
                 "test": int(len(y_test)),
                 **({"train_extra": int(len(y_train) - split.train.size)} if extras else {})},
        run=history_summary(history),
    )
    curves = curves_png([history], "accuracy", f"mnist {arch}"
                        + (" with augmentation" if augment else ""))
    return TrainResult(save(options, NAME, net, manifest, curves), metrics)
