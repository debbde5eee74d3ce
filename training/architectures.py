"""The default networks, as layer lists the artifact records."""

from __future__ import annotations

from model import (
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool2D,
    ReLU,
    Reshape,
    Sequential,
)


def housing_member(hidden: tuple[int, ...] = (64, 64)) -> list[Layer]:
    """One member of the housing ensemble: a small ReLU MLP with one output (scaled MEDV)."""
    layers: list[Layer] = []
    for units in hidden:
        layers += [Dense(units), ReLU()]
    return [*layers, Dense(1)]


def digits_mlp() -> list[Layer]:
    """The Keras MNIST MLP recipe: 784-512-10 (the peers' model in the benchmarks)."""
    return [Flatten(), Dense(512), ReLU(), Dense(10)]


def digits_cnn() -> list[Layer]:
    """Three conv/pool blocks (32-64-128 filters, 'same' padding) and a dropout-regularised
    dense head: 99%+ on MNIST from 10,000 training digits with augmentation, at a third of
    the cost of the Keras example CNN (whose 3x3x32x64 convolution runs at full 24x24)."""
    return [Reshape([28, 28, 1]),
            Conv2D(32, 3, padding="same"), ReLU(), MaxPool2D(2),
            Conv2D(64, 3, padding="same"), ReLU(), MaxPool2D(2),
            Conv2D(128, 3, padding="same"), ReLU(), MaxPool2D(2),
            Dropout(0.25), Flatten(), Dense(128), ReLU(), Dropout(0.5), Dense(10)]


DIGIT_ARCHITECTURES = {"mlp": digits_mlp, "cnn": digits_cnn}


def digits_network(arch: str, image_shape: tuple[int, int], seed: int) -> Sequential:
    """A digit classifier for images of ``image_shape``, built from ``seed``."""
    layers = DIGIT_ARCHITECTURES[arch]()
    if arch == "cnn" and image_shape != (28, 28):
        layers[0] = Reshape([*image_shape, 1])
    return Sequential(layers, input_shape=image_shape).build(seed=seed)
