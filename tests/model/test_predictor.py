"""Predictor: stored preprocessing applied, inputs checked row by row, results exact."""

import threading

import numpy as np
import pytest

from model import InputError, Predictor
from model.preprocessing import Pipeline, TargetScaler
from tests.factories import random_housing, random_images


@pytest.fixture
def regressor(regressor_dir):
    return Predictor.from_artifact(regressor_dir)


@pytest.fixture
def classifier(classifier_dir):
    return Predictor.from_artifact(classifier_dir)


def test_regression_applies_preprocessing_and_target_scaling(regressor):
    x = random_housing(5)
    m = regressor.manifest["preprocessing"]
    z = Pipeline.from_config(m["input"]).transform(x)
    raw = regressor.artifact.network.infer(z)[:, 0]
    expected = TargetScaler.from_config(m["target"]).inverse(raw)
    got = regressor.predict(x)
    assert got.shape == (5,) and got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    assert regressor.features[0] == "CRIM" and regressor.task == "regression"


def test_classification_returns_probabilities(classifier):
    p = classifier.predict(random_images(7))
    assert p.shape == (7, 10) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    assert classifier.labels == [str(i) for i in range(10)]


def test_flat_and_square_images_give_the_same_answer(classifier):
    img = random_images(3)
    np.testing.assert_array_equal(classifier.predict(img), classifier.predict(img.reshape(3, 784)))
    np.testing.assert_array_equal(classifier.predict(img),
                                  classifier.predict(img.astype(np.float64).tolist()))


@pytest.mark.parametrize("bad,row,message", [
    (float("nan"), 1, "NaN, Infinity"),
    (float("inf"), 2, "NaN, Infinity"),
    (1e39, 0, "beyond float32 range"),
    (-1, 1, r"outside the allowed range \[0, 255\]"),
    (255.5, 2, "outside the allowed range"),
])
def test_bad_values_name_their_row(classifier, bad, row, message):
    x = random_images(3).astype(np.float64)
    x[row, 5, 7] = bad
    with pytest.raises(InputError, match=message) as info:
        classifier.predict(x)
    assert info.value.rows == [row]
    assert "value 147" in info.value.details[row][0]


def test_every_bad_row_is_reported(classifier):
    x = random_images(6).astype(np.float64)
    x[[1, 4], 0, 0] = np.nan
    x[5, 3, 3] = 300
    rows, problems = classifier.find_problems(x)
    assert sorted(problems) == [1, 4, 5] and rows.shape == (6, 784)


@pytest.mark.parametrize("bad,message", [
    ([[True] * 13], "not booleans"),
    ([["1.0"] * 13], "must be numbers"),
    ([[1.0] * 12], r"13 numbers; got instances of shape \[12\]"),
    ([[1.0] * 13, [1.0] * 12], "same shape"),
    ([], "no instances"),
    ([1.0] * 13, r"got instances of shape \[\]"),
])
def test_malformed_batches(regressor, bad, message):
    with pytest.raises(InputError, match=message):
        regressor.predict(bad)


def test_wrong_image_shape(classifier):
    with pytest.raises(InputError, match=r"28 x 28 numbers \(or 784 in one list\)"):
        classifier.predict(np.zeros((2, 27, 28)))


def test_predictions_do_not_depend_on_the_batch(classifier, regressor):
    """Bitwise: a row's prediction is the same alone, in any batch, across chunk borders."""
    for predictor, x in ((classifier, random_images(300)), (regressor, random_housing(300))):
        full = predictor.predict(x)
        for size in (1, 3, 8, 17, 100):
            for start in (0, 5, 199):
                part = predictor.predict(x[start:start + size])
                np.testing.assert_array_equal(part, full[start:start + size])


def test_predictions_do_not_depend_on_the_memory_layout(classifier, regressor):
    """Bitwise: a Fortran-ordered or strided batch (e.g. columns picked from a wider table)
    gives what a C-ordered one gives."""
    for predictor, x in ((classifier, random_images(50).reshape(50, 784).astype(np.float64)),
                         (regressor, random_housing(300))):
        expected = predictor.predict(x)
        np.testing.assert_array_equal(predictor.predict(np.asfortranarray(x)), expected)
        np.testing.assert_array_equal(predictor.predict(np.repeat(x, 2, axis=1)[:, ::2]),
                                      expected)


def test_batches_larger_than_one_inference_chunk(regressor):
    x = random_housing(9000, seed=2)
    full = regressor.predict(x)
    np.testing.assert_array_equal(regressor.predict(x[4090:4100]), full[4090:4100])


def test_predict_is_thread_safe(classifier):
    x = random_images(64)
    expected = classifier.predict(x)
    results = []

    def work():
        for _ in range(5):
            results.append(classifier.predict(x))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20
    for r in results:
        np.testing.assert_array_equal(r, expected)


THREAD_PROBE = """
import hashlib, sys
import numpy as np
from model import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Reshape, Sequential
mlp = [Flatten(), Dense(512), ReLU(), Dense(10)]
cnn = [Reshape([28, 28, 1]), Conv2D(32, 3, padding="same"), ReLU(), MaxPool2D(2),
       Conv2D(64, 3, padding="same"), ReLU(), MaxPool2D(2), Conv2D(128, 3, padding="same"),
       ReLU(), MaxPool2D(2), Dropout(0.25), Flatten(), Dense(128), ReLU(), Dense(10)]
x = np.random.default_rng(0).random((40, 28, 28), dtype=np.float32)
for layers in (mlp, cnn):
    net = Sequential(layers, input_shape=(28, 28)).build(seed=1)
    print(hashlib.sha256(net.infer(x).tobytes()).hexdigest())
"""


def test_blas_thread_count():
    """Dense layers give the same bits with one BLAS thread or two (GEMV per row).

    A convolution's per-image GEMM may not (OpenBLAS splits large GEMMs between threads),
    which is why every serving path runs inference with one BLAS thread; the bits are
    then the same in every process.
    """
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    outputs = []
    for threads in ("1", "1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads,
               "PYTHONPATH": str(root)}
        run = subprocess.run([sys.executable, "-c", THREAD_PROBE], env=env, cwd=root,
                             capture_output=True, text=True, timeout=120, check=True)
        outputs.append(run.stdout)
    mlp, cnn = zip(*(out.split() for out in outputs), strict=True)
    assert mlp[0] == mlp[1] == mlp[2]
    assert cnn[0] == cnn[1]  # two processes, one thread each: the same bits
