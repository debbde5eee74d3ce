"""Data-parallel training steps (training/parallel.py): the same update as one thread."""

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from model import (
    SGD,
    Adam,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    MeanSquaredError,
    ReLU,
    Reshape,
    Sequential,
    SoftmaxCrossEntropy,
    ensemble,
)
from training.loop import FitConfig, accuracy, fit
from training.parallel import (
    MIN_SHARD_ROWS,
    DataParallel,
    default_threads,
    shard_bounds,
    usable_cpus,
)


def small_cnn(dropout: float = 0.0) -> list:
    return [Reshape([8, 8, 1]), Conv2D(4, 3, padding="same"), ReLU(), MaxPool2D(2),
            Conv2D(6, 3), ReLU(), Dropout(dropout), Flatten(), Dense(5)]


def digits(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8)), rng.integers(0, 5, n)


@pytest.mark.parametrize("n, threads", [(128, 2), (129, 2), (100, 3), (31, 2), (16, 4),
                                        (1, 2), (64, 1)])
def test_shards_cover_the_batch_in_order_with_near_equal_sizes(n, threads):
    bounds = shard_bounds(n, threads)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1
    assert len(bounds) <= threads
    # a shard below MIN_SHARD_ROWS is only made when the whole batch is that small
    assert len(bounds) == 1 or min(sizes) >= MIN_SHARD_ROWS


@pytest.mark.parametrize("threads", [2, 3])
def test_one_parallel_step_makes_the_whole_batch_update(threads):
    """float64, no dropout: the update equals the one-thread one up to rounding."""
    x, y = digits(60)
    one = Sequential(small_cnn(), input_shape=(8, 8)).build(seed=1, dtype=np.float64)
    many = Sequential(small_cnn(), input_shape=(8, 8)).build(seed=1, dtype=np.float64)
    loss = SoftmaxCrossEntropy()
    value_one = one.train_step(x, y, loss, SGD(0.5))
    with DataParallel(many, threads) as trainer:
        value_many = trainer.train_step(x, y, loss, SGD(0.5))
    assert value_many == pytest.approx(value_one, rel=1e-12)
    for name, w in one.get_weights().items():
        np.testing.assert_allclose(many.get_weights()[name], w, rtol=1e-10, atol=1e-13,
                                   err_msg=name)
    # and something did change, so the comparison is not between two untouched copies
    fresh = Sequential(small_cnn(), input_shape=(8, 8)).build(seed=1, dtype=np.float64)
    assert not np.allclose(fresh.get_weights()["1.W"], one.get_weights()["1.W"])


def test_shards_weigh_by_their_rows_for_mean_squared_error():
    rng = np.random.default_rng(3)
    x, y = rng.random((50, 6)), rng.random((50, 2))
    layers = lambda: [Dense(8), ReLU(), Dense(2)]  # noqa: E731
    one = Sequential(layers(), input_shape=(6,)).build(seed=0, dtype=np.float64)
    many = Sequential(layers(), input_shape=(6,)).build(seed=0, dtype=np.float64)
    one.train_step(x, y, MeanSquaredError(), SGD(0.1))
    with DataParallel(many, 3) as trainer:  # shards of 17, 16 and 17 rows
        trainer.train_step(x, y, MeanSquaredError(), SGD(0.1))
    for name, w in one.get_weights().items():
        np.testing.assert_allclose(many.get_weights()[name], w, rtol=1e-10, atol=1e-13)


def test_a_run_is_bitwise_reproducible_for_a_seed_and_thread_count():
    x, y = digits(96)

    def run() -> dict[str, np.ndarray]:
        net = Sequential(small_cnn(dropout=0.5), input_shape=(8, 8)).build(seed=4)
        opt = Adam(1e-2)
        with DataParallel(net, 2) as trainer:
            for _ in range(4):
                trainer.train_step(x.astype(np.float32), y, SoftmaxCrossEntropy(), opt)
        return net.get_weights()

    first, second = run(), run()
    for name, w in first.items():
        assert np.array_equal(second[name], w), name


def test_replicas_share_parameters_but_not_gradients_or_dropout_masks():
    net = Sequential(small_cnn(dropout=0.5), input_shape=(8, 8)).build(seed=0)
    twin = net.replica()
    for own, other in zip(net.parameters(), twin.parameters(), strict=True):
        assert own.value is other.value
        assert own.grad is not other.grad
    net.set_weights({k: v + 1 for k, v in net.get_weights().items()})
    assert np.array_equal(twin.get_weights()["1.W"], net.get_weights()["1.W"])
    x = np.ones((4, 8, 8), np.float32)
    a, b = net.forward(x).copy(), twin.forward(x)
    assert not np.array_equal(a, b)  # its own dropout stream
    assert twin.layers[6].rng is not net.layers[6].rng


def test_an_ensemble_trains_on_threads():
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 13), dtype=np.float32), rng.random((64, 1), dtype=np.float32)
    members = [Sequential([Dense(8), ReLU(), Dense(1)], input_shape=(13,)).build(seed=s)
               for s in (1, 2)]
    joined = ensemble(members)
    twin = joined.replica()
    assert twin.layers[0].members[0].layers[0].params["W"] is \
        joined.layers[0].members[0].layers[0].params["W"]
    with DataParallel(joined, 2) as trainer:
        before = trainer.train_step(x, y, MeanSquaredError(), Adam(1e-2))
        for _ in range(30):
            after = trainer.train_step(x, y, MeanSquaredError(), Adam(1e-2))
    assert after < before


def test_the_step_runs_blas_single_threaded_and_restores_it():
    def blas_threads() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    seen = []
    x, y = digits(64)

    class Spy(SoftmaxCrossEntropy):
        def __call__(self, logits, target):
            seen.append(blas_threads())
            return super().__call__(logits, target)

    net = Sequential(small_cnn(), input_shape=(8, 8)).build(seed=0)
    with DataParallel(net, 2) as trainer:
        trainer.train_step(x.astype(np.float32), y, Spy(), SGD(0.1))
    assert len(seen) == 2 and all(t == [1] * len(before) for t in seen)
    assert blas_threads() == before


def test_a_failing_shard_raises_in_the_caller():
    x, _ = digits(64)
    labels = np.zeros(64, np.int64)
    labels[40] = 7  # out of range, in the second shard
    net = Sequential(small_cnn(), input_shape=(8, 8)).build(seed=0)
    with DataParallel(net, 2) as trainer, pytest.raises(ValueError, match="labels must be"):
        trainer.train_step(x.astype(np.float32), labels, SoftmaxCrossEntropy(), SGD(0.1))


def test_convolutional_networks_get_every_cpu_and_dense_ones_one():
    conv = Sequential(small_cnn(), input_shape=(8, 8)).build(seed=0)
    dense = Sequential([Dense(4)], input_shape=(3,)).build(seed=0)
    assert default_threads(conv) == usable_cpus()
    assert default_threads(dense) == 1
    with pytest.raises(ValueError, match="at least 1"):
        DataParallel(dense, 0)


def test_fit_records_the_threads_it_trained_on():
    x, y = digits(64)
    x = x.astype(np.float32)
    net = Sequential(small_cnn(), input_shape=(8, 8)).build(seed=0)
    history = fit(net, Adam(1e-2), SoftmaxCrossEntropy(), x, y, x, y,
                  FitConfig(epochs=2, batch_size=32, progress=False, threads=2),
                  accuracy(y), "accuracy", higher_is_better=True)
    assert history.threads == 2
    assert len(history.epochs) == 2


def test_augmentation_runs_per_shard_on_its_thread_with_its_own_stream():
    x, y = digits(64)
    x = x.astype(np.float32)
    calls = []

    def jitter(rows, rng):
        calls.append((len(rows), id(rng), threading.get_ident()))
        return rows + rng.normal(0, 0.1, rows.shape).astype(np.float32)

    def run():
        net = Sequential(small_cnn(dropout=0.25), input_shape=(8, 8)).build(seed=0)
        fit(net, Adam(1e-2), SoftmaxCrossEntropy(), x, y, x, y,
            FitConfig(epochs=2, batch_size=64, progress=False, threads=2),
            accuracy(y), "accuracy", higher_is_better=True, batch_transform=jitter)
        return net.get_weights()

    first = run()
    assert sorted({n for n, _, _ in calls}) == [32]
    assert len({r for _, r, _ in calls}) == 2  # two streams
    assert len({t for _, _, t in calls}) == 2  # on two threads
    second = run()
    for name, w in first.items():
        assert np.array_equal(second[name], w), name


def test_a_transform_needs_a_generator_per_thread():
    x, y = digits(64)
    net = Sequential(small_cnn(), input_shape=(8, 8)).build(seed=0)
    with DataParallel(net, 2) as trainer, pytest.raises(ValueError, match="2 generators"):
        trainer.train_step(x.astype(np.float32), y, SoftmaxCrossEntropy(), SGD(0.1),
                           lambda rows, rng: rows, [np.random.default_rng(0)])
