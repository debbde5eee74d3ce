"""Preprocessing steps: fitted statistics, exact config round trips, robustness."""

import statistics

import numpy as np
import pytest

from model import ConfigError
from model.preprocessing import (
    Clip,
    Pipeline,
    QuantileNormal,
    Scale,
    SignedLog,
    Standardize,
    TargetScaler,
    normal_ppf,
)


def test_normal_ppf_matches_the_standard_library():
    p = np.concatenate([np.linspace(1e-9, 1 - 1e-9, 20001), [0.5, 0.02425, 0.97575]])
    expected = np.array([statistics.NormalDist().inv_cdf(v) for v in p])
    np.testing.assert_allclose(normal_ppf(p), expected, atol=1e-8)


def test_quantile_normal_ranks_and_clamps():
    rng = np.random.default_rng(0)
    x = np.c_[rng.lognormal(size=500), np.where(rng.random(500) < 0.7, 0.0, rng.random(500))]
    step = QuantileNormal(n_quantiles=50, bound=3.0).fit(x)
    z = step.transform(x)
    assert z.dtype == np.float32
    assert abs(z[:, 0].mean()) < 0.05 and abs(z[:, 0].std() - 1) < 0.05
    order = np.argsort(x[:, 0])
    assert (np.diff(z[order, 0]) >= 0).all()  # monotone
    far = step.transform(np.array([[1e12, -5.0], [-1e12, 1e12]]))
    np.testing.assert_allclose(far, [[3.0, -3.0], [-3.0, 3.0]], atol=1e-6)
    # the 70% of zeros share one value near the middle of their tied quantiles
    zeros = z[x[:, 1] == 0, 1]
    assert np.ptp(zeros) == 0 and zeros[0] == pytest.approx(normal_ppf(np.array([0.35]))[0],
                                                             abs=0.05)


@pytest.mark.parametrize("step", [
    Standardize().fit(np.random.default_rng(1).normal(5, 3, (50, 4))),
    QuantileNormal(n_quantiles=11).fit(np.random.default_rng(2).random((40, 3))),
    SignedLog([0, 2]), Clip(-2.5, 4.0), Scale(1 / 255),
])
def test_config_round_trip_is_exact(step):
    rebuilt = Pipeline.from_config([step.get_config()])
    x = np.random.default_rng(3).normal(0, 10, (20, 4 if isinstance(step, Standardize) else 3))
    np.testing.assert_array_equal(rebuilt.transform(x), Pipeline([step]).transform(x))


def test_pipeline_fits_each_step_on_the_previous_output():
    x = np.random.default_rng(4).lognormal(2, 1, (200, 2))
    pipe = Pipeline([SignedLog([0, 1]), Standardize()]).fit(x)
    z = pipe.transform(x)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-5)


def test_signed_log_is_defined_for_negative_values():
    out = SignedLog([0]).transform(np.array([[-np.e + 1, 0.0, 5.0]]))
    np.testing.assert_allclose(out, [[-1.0, 0.0, 5.0]], rtol=1e-6)


@pytest.mark.parametrize("log", [False, True])
def test_target_scaler_round_trip(log):
    y = np.random.default_rng(5).uniform(5, 50, 100)
    scaler = TargetScaler.fitted(y, log=log)
    z = scaler.transform(y)
    assert abs(z.mean()) < 1e-5 and abs(z.std() - 1) < 1e-5
    np.testing.assert_allclose(scaler.inverse(z), y, rtol=1e-5)
    assert TargetScaler.from_config(scaler.get_config()).get_config() == scaler.get_config()


@pytest.mark.parametrize("config,message", [
    ([{"type": "Pickle"}], "unknown preprocessing step"),
    ([{"type": "Standardize", "mean": [0, 1], "std": [1]}], "same length"),
    ([{"type": "Standardize", "mean": [0], "std": [0]}], "positive"),
    ([{"type": "QuantileNormal", "quantiles": [[2, 1]], "n_quantiles": 2}], "non-decreasing"),
    ([{"type": "Clip", "low": 1, "high": 0}], "low < high"),
    ({"type": "Scale"}, "list of steps"),
])
def test_invalid_configs(config, message):
    with pytest.raises(ConfigError, match=message):
        Pipeline.from_config(config)


def test_log_target_needs_positive_values():
    with pytest.raises(ConfigError, match="> 0"):
        TargetScaler.fitted(np.array([1.0, 0.0]), log=True)
