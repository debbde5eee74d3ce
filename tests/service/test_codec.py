"""codec: the vectorised fast path agrees with the Predictor's own checks."""

from __future__ import annotations

import numpy as np
import pytest

from model import Predictor
from service.codec import _checked, instances_to_batch, may_hold_booleans
from service.errors import InvalidRequest
from service.signature import signature_of


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
        sig = signature_of(p)
        for trial in range(300):
            x = rng.uniform(0, 255, size=(3, sig.input_size))
            for _ in range(trial % 3):
                x[rng.integers(3), rng.integers(sig.input_size)] = rng.choice(specials)
            _, problems = p.find_problems(x)
            try:
                out = _checked(p, sig, x, ("instances",))
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
    sig = signature_of(p)
    out = instances_to_batch(p, sig, [[2**63] + [1.5] * 12], check_booleans=False)
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
    import orjson
    obj = orjson.loads(body)
    if "inputs" in obj:
        envelope = {**obj, "inputs": [{k: v for k, v in t.items() if k != "data"}
                                      for t in obj["inputs"]]}
    else:
        envelope = {k: v for k, v in obj.items() if k != "instances"}
    assert may_hold_booleans(body, envelope) is expected
