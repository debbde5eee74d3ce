"""Tiny seeded artifacts for tests: a housing-like regressor and MNIST-like classifiers, and
picture files of digits."""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from model import (
    Conv2D,
    Dense,
    Flatten,
    MaxPool2D,
    ReLU,
    Reshape,
    Sequential,
    save_artifact,
)

HOUSING_FEATURES = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX",
                    "PTRATIO", "B", "LSTAT"]
HOUSING_MEAN = [3.6, 11.4, 11.1, 0.07, 0.55, 6.3, 68.6, 3.8, 9.5, 408.2, 18.5, 356.7, 12.7]
HOUSING_STD = [8.6, 23.3, 6.9, 0.25, 0.12, 0.7, 28.1, 2.1, 8.7, 168.5, 2.2, 91.3, 7.1]


def make_regressor(root: Path, name: str = "housing", seed: int = 0, hidden: int = 8) -> Path:
    """A 13-feature regressor with the same kind of preprocessing as the real one."""
    net = Sequential([Dense(hidden), ReLU(), Dense(1)], input_shape=(13,)).build(seed=seed)
    manifest = {
        "task": "regression",
        "input": {"features": HOUSING_FEATURES},
        "output": {"name": "MEDV", "unit": "$1000s"},
        "preprocessing": {
            "input": [{"type": "SignedLog", "columns": [0, 1]},
                      {"type": "Standardize", "mean": HOUSING_MEAN, "std": HOUSING_STD},
                      {"type": "Clip", "low": -6.0, "high": 6.0}],
            "target": {"type": "TargetScaler", "mean": 22.5, "std": 9.2},
        },
        "metrics": {"test": {"rmse": 0.0}},
        "training": {"seed": seed, "note": "test fixture, untrained"},
    }
    return save_artifact(root, name, net, manifest)


def classifier_network(arch: str = "mlp", seed: int = 0) -> Sequential:
    if arch == "mlp":
        layers = [Flatten(), Dense(16), ReLU(), Dense(10)]
    elif arch == "cnn":
        layers = [Reshape([28, 28, 1]), Conv2D(4, 3), ReLU(), MaxPool2D(2), Conv2D(4, 3),
                  ReLU(), Flatten(), Dense(10)]
    else:
        raise ValueError(arch)
    return Sequential(layers, input_shape=(28, 28)).build(seed=seed)


def make_classifier(root: Path, name: str = "mnist", arch: str = "mlp", seed: int = 0,
                    network: Sequential | None = None) -> Path:
    """A 28x28-pixel, 10-class classifier taking pixels in [0, 255]."""
    net = network or classifier_network(arch, seed)
    manifest = {
        "task": "classification",
        "input": {"shape": [28, 28], "range": [0, 255],
                  "description": "28x28 grey-scale image, white digit on black"},
        "output": {"labels": [str(i) for i in range(10)]},
        "preprocessing": {"input": [{"type": "Scale", "factor": 1 / 255}]},
        "metrics": {"test": {"accuracy": 0.0}},
        "training": {"seed": seed, "note": "test fixture, untrained"},
    }
    return save_artifact(root, name, net, manifest)


def random_images(n: int, seed: int = 0) -> np.ndarray:
    """n pseudo-digits: uint8 noise with a bright blob, shape (n, 28, 28)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 60, size=(n, 28, 28))
    img[:, 8:20, 10:18] += rng.integers(100, 196, size=(n, 1, 1))
    return img.astype(np.uint8)


def random_housing(n: int, seed: int = 0) -> np.ndarray:
    """n plausible rows of the 13 housing features, float64."""
    rng = np.random.default_rng(seed)
    mean, std = np.array(HOUSING_MEAN), np.array(HOUSING_STD)
    return np.abs(mean + std * rng.standard_normal((n, 13)))


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array as a gzipped IDX file."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + np.ascontiguousarray(array, np.uint8).tobytes()))
    return path


def digit_png(seed: int = 0, scale: int = 4, fmt: str = "PNG") -> bytes:
    """A picture file as a client sends one: a random_images digit drawn ``scale`` times
    larger, dark ink on white paper (so the service's normalisation has work to do)."""
    pixels = 255 - random_images(1, seed)[0].repeat(scale, 0).repeat(scale, 1)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()
