"""Sequential: config round trip, building, parameter handling, training/inference paths."""

import numpy as np
import pytest

from model import (
    ConfigError,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    ReLU,
    Reshape,
    Sequential,
    Tanh,
    layer_from_config,
)


def mlp():
    return Sequential([Flatten(), Dense(512), ReLU(), Dense(10)], input_shape=(28, 28))


def cnn():
    return Sequential([Reshape([12, 12, 1]), Conv2D(4, 3), ReLU(), MaxPool2D(2), Dropout(0.3),
                       Flatten(), Dense(16), Tanh(), Dense(3)], input_shape=(144,))


def test_config_round_trip_rebuilds_the_same_network():
    net = cnn().build(seed=4)
    clone = Sequential.from_config(net.get_config()).build(seed=99)
    clone.set_weights(net.get_weights())
    x = np.random.default_rng(0).random((5, 144), dtype=np.float32)
    np.testing.assert_array_equal(clone.infer(x), net.infer(x))
    assert clone.get_config() == net.get_config()


def test_parameter_count_and_summary():
    net = mlp().build()
    assert net.count_params() == 784 * 512 + 512 + 512 * 10 + 10
    text = net.summary()
    assert "Dense(512)" in text and "407,050" in text and "(10,)" in text


def test_seeded_build_is_reproducible():
    a, b, c = mlp().build(seed=1), mlp().build(seed=1), mlp().build(seed=2)
    np.testing.assert_array_equal(a.get_weights()["1.W"], b.get_weights()["1.W"])
    assert not np.array_equal(a.get_weights()["1.W"], c.get_weights()["1.W"])
    assert all(w.dtype == np.float32 for w in a.get_weights().values())


def test_initialisers_follow_the_activation():
    net = mlp().build(seed=0)
    w_relu, w_out = net.get_weights()["1.W"], net.get_weights()["3.W"]
    assert w_relu.std() == pytest.approx(np.sqrt(2 / 784), rel=0.05)  # He
    assert w_out.std() == pytest.approx(np.sqrt(2 / (512 + 10)), rel=0.05)  # Glorot
    assert not net.get_weights()["1.b"].any()


@pytest.mark.parametrize("layers,shape,message", [
    ([Dense(3)], (4, 4), "put a Flatten layer before it"),
    ([Conv2D(2, 3)], (16,), "put a Reshape layer before it"),
    ([Conv2D(2, 5)], (3, 3, 1), "smaller than the window"),
    ([Reshape([5, 5])], (16,), "cannot reshape"),
])
def test_bad_architectures(layers, shape, message):
    with pytest.raises(ConfigError, match=message):
        Sequential(layers, input_shape=shape).build()


@pytest.mark.parametrize("config,message", [
    ({"type": "Lambda"}, "unknown layer type"),
    ({"units": 3}, "no 'type'"),
    ({"type": "Dense", "units": 0}, "positive integer"),
    ({"type": "Dense", "units": 3, "activation": "relu"}, "bad arguments"),
    ({"type": "Dropout", "rate": 1.0}, r"\[0, 1\)"),
    ({"type": "Conv2D", "filters": 2, "kernel_size": 3, "padding": "full"}, "padding"),
    ({"type": "Dense", "units": 2, "kernel_initializer": "magic"}, "unknown initializer"),
])
def test_bad_layer_configs(config, message):
    with pytest.raises(ConfigError, match=message):
        layer_from_config(config)


def test_set_weights_checks_names_and_shapes():
    net = mlp().build()
    weights = {k: v.copy() for k, v in net.get_weights().items()}
    weights["1.W"] = weights["1.W"][:, :5]
    with pytest.raises(ConfigError, match=r"'1.W' has shape \(784, 5\)"):
        net.set_weights(weights)
    del weights["1.W"]
    with pytest.raises(ConfigError, match=r"missing \['1.W'\]"):
        net.set_weights(weights)


def test_inference_path_equals_training_forward_without_dropout():
    net = Sequential([Reshape([12, 12, 1]), Conv2D(4, 3, padding="same"), ReLU(), MaxPool2D(2),
                      Flatten(), Dense(8), ReLU(), Dense(3)], input_shape=(144,)).build(seed=3)
    x = np.random.default_rng(1).random((9, 144), dtype=np.float32)
    train = net.forward(x, training=True).copy()
    np.testing.assert_allclose(net.infer(x), train, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(net.forward(x, training=False), net.infer(x))


def test_reordered_relu_maxpool_computes_the_configured_function():
    net = Sequential([Reshape([8, 8, 2]), ReLU(), MaxPool2D(2)], input_shape=(128,)).build()
    x = np.random.default_rng(2).standard_normal((4, 128)).astype(np.float32)
    relu_first = np.maximum(x.reshape(4, 8, 8, 2), 0).reshape(4, 4, 2, 4, 2, 2).max(axis=(2, 4))
    np.testing.assert_array_equal(net.infer(x), relu_first)
    np.testing.assert_array_equal(net.forward(x), relu_first)
    assert [type(layer).__name__ for layer in net.layers] == ["Reshape", "ReLU", "MaxPool2D"]


def test_infer_does_not_modify_its_input():
    net = Sequential([ReLU(), Dense(2)], input_shape=(4,)).build()
    x = np.array([[-1, 2, -3, 4]], dtype=np.float32)
    net.infer(x)
    net.forward(x)
    np.testing.assert_array_equal(x, [[-1, 2, -3, 4]])


@pytest.mark.parametrize("rate", [0.25, 0.5, 0.1, 0.3])  # 8-bit draws, then 16-bit ones
def test_dropout_training_and_inference(rate):
    layer = Dropout(rate)
    layer.build((1000,), np.random.default_rng(0), np.float32)
    x = np.ones((50, 1000), dtype=np.float32)
    y = layer.forward(x)
    kept = y != 0
    assert kept.mean() == pytest.approx(1 - rate, abs=0.01)
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)
    assert y.mean() == pytest.approx(1.0, abs=0.02)
    np.testing.assert_array_equal(layer.infer(x), x)


def test_unbuilt_network_refuses_to_run():
    with pytest.raises(ConfigError, match="not built"):
        mlp().infer(np.zeros((1, 28, 28)))
