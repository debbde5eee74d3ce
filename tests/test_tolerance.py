"""The cross-machine comparison itself: loose where kernels differ, strict elsewhere."""

import pytest

from tests.tolerance import json_mismatches, text_close


@pytest.mark.parametrize(("actual", "expected"), [
    ({"predictions": [23.960127]}, {"predictions": [23.960135]}),   # SkylakeX vs Haswell
    ([2.4824112e-12, 7.893287e-06], [2.4824112e-12, 7.89328e-06]),
    ({"label": 7, "p": [0.9999919]}, {"label": 7, "p": [0.99999195]}),
    ({"rmse": 3.719085043010936, "n": 102}, {"rmse": 3.7190847223892454, "n": 102}),
])
def test_kernel_differences_pass(actual, expected):
    assert json_mismatches(actual, expected) == []


@pytest.mark.parametrize(("actual", "expected"), [
    ({"predictions": [23.961]}, {"predictions": [23.960135]}),      # 4e-5 relative
    ([0.00002], [0.0]),                                             # beyond atol
    ({"label": 7}, {"label": 1}),                                   # labels exact
    ({"n": 102}, {"n": 101}),
    ({"n": 102}, {"n": 102.0}),                                     # int is not float
    ({"model_version": "1"}, {"model_version": "2"}),
    ({"a": 1}, {"a": 1, "b": 2}),
    ([1.0, 2.0], [1.0]),
    ([True], [1]),
])
def test_real_differences_fail(actual, expected):
    assert json_mismatches(actual, expected)


def test_printed_text():
    assert text_close("[23.960127]", "[23.960135]")
    assert text_close("accuracy: 0.95", "accuracy: 0.9500001")
    assert not text_close("[23.961]", "[23.960135]")
    assert not text_close("[5 4 0 1 7]", "[5 4 0 1 1]")
    assert not text_close("loss [23.960135]", "[23.960135]")
