"""Validation: the vectorised fast path agrees with the Predictor's own checks."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from model import Predictor
from service.core.errors import InvalidRequest
from service.core.instances import instances_to_batch
from service.core.jsonio import may_hold_booleans
from service.core.screening import screen_instances, screen_rows
from service.core.values import checked


@pytest.fixture
def predictors(regressor_dir, tmp_path):
    from tests.factories import make_classifier
    return [Predictor.from_artifact(regressor_dir),
            Predictor.from_artifact(make_classifier(tmp_path / "c"))]


def test_fast_value_check_accepts_exactly_what_find_problems_accepts(predictors):
    rng = np.random.default_rng(0)
    specials = [np.nan, np.inf, -np.inf, 1e39, -1e39, -1.0, 256.0, 255.0, 0.0, -0.0,
                3.4e38, 255.00001, -1e-45]
    for p in predictors:
        sig = p.interface
        for trial in range(300):
            x = rng.uniform(0, 255, size=(3, sig.input_size))
            for _ in range(trial % 3):
                x[rng.integers(3), rng.integers(sig.input_size)] = rng.choice(specials)
            _, problems = p.find_problems(x)
            try:
                out = checked(sig, x, ("instances",))
            except InvalidRequest as exc:
                assert problems, x
                assert set(exc.details["instances"]) == {str(i) for i in problems}
            else:
                assert not problems
                np.testing.assert_array_equal(out.reshape(3, -1), x.astype(np.float32))


def test_boolean_scan_ignores_booleans_outside_the_numbers():
    assert not may_hold_booleans(b'{"instances": [[1, 2]]}', {})
    env = {"parameters": {"binary_data_output": True}, "id": "true-story"}
    body = b'{"parameters": {"binary_data_output": true}, "id": "true-story", "data": [1]}'
    assert not may_hold_booleans(body, env)
    assert may_hold_booleans(body.replace(b"[1]", b"[true]"), env)


def test_integers_beyond_int64_and_floats_convert(predictors):
    p = predictors[0]
    sig = p.interface
    out = instances_to_batch(sig, [[2**63] + [1.5] * 12], check_booleans=False)
    assert out.dtype == np.float32 and out.shape == (1, 13)


@pytest.mark.parametrize("body,expected", [
    (b'{"instances": [[1, 2, 3]]}', False),
    (b'{"instances": [[1, true, 3]]}', True),
    (b'{"instances": [[1,false]]}', True),
    (b'{"instances": [[null, 1]]}', False),
    (b'{"signature_name": "serving_default", "instances": [[1e-5, 2]]}', False),
    (b'{"inputs": [{"name": "x", "data": [1, 2]}], "parameters": {"p": true}}', False),
])
def test_boolean_scan_cases(body, expected):
    obj = orjson.loads(body)
    if "inputs" in obj:
        envelope = {**obj, "inputs": [{k: v for k, v in t.items() if k != "data"}
                                      for t in obj["inputs"]]}
    else:
        envelope = {k: v for k, v in obj.items() if k != "instances"}
    assert may_hold_booleans(body, envelope) is expected


# -- the batch scorer's screening: the service's checks, every bad row kept apart ------------
def _one_by_one(sig, instances):
    """What the service answers for each instance sent alone: array or details."""
    out = []
    for inst in instances:
        try:
            out.append(instances_to_batch(sig, [inst], may_hold_booleans(
                orjson.dumps(inst), {})))
        except InvalidRequest as exc:
            out.append(exc.details["instances"]["0"])
    return out


def test_screening_agrees_with_the_service_instance_by_instance(predictors):
    housing, mnist = (p.interface for p in predictors)
    row = [0.1] * 13
    named = dict(zip(housing.features, row, strict=True))
    cases = {
        housing: [row, named, {**named, "RM": "x"}, {**named, "RM": True}, row[:12],
                  {**named, "EXTRA": 1}, [1e39] + row[1:], "text", None, row],
        mnist: [[0] * 784, [[0] * 28] * 28, [0] * 783 + [256], [0] * 783 + [False],
                [[0] * 28] * 27, [0] * 783 + [None], [0.5] * 784, 7],
    }
    for sig, instances in cases.items():
        alone = _one_by_one(sig, instances)
        check = may_hold_booleans(orjson.dumps(instances), {})
        screened = screen_instances(sig, instances, check)
        bad = [i for i, a in enumerate(alone) if not isinstance(a, np.ndarray)]
        assert sorted(screened.problems) == bad
        for i in bad:
            assert screened.problems[i] == alone[i]
        assert screened.good.tolist() == [i for i in range(len(instances)) if i not in bad]
        for k, i in enumerate(screened.good):
            np.testing.assert_array_equal(screened.x[k], alone[i][0])


def test_screen_rows_keeps_the_good_rows_in_order(predictors):
    sig = predictors[0].interface
    x = np.ones((5, 13))
    x[1, 5], x[3, 0] = np.nan, np.inf
    screened = screen_rows(sig, x)
    assert screened.good.tolist() == [0, 2, 4] and screened.x.shape == (3, 13)
    assert list(screened.problems) == [1, 3]
    assert list(screened.problems[1]) == ["RM"] and "nan" in screened.problems[1]["RM"][0]
    clean = screen_rows(sig, np.ones((2, 13)))
    assert clean.problems == {} and clean.good.tolist() == [0, 1]
