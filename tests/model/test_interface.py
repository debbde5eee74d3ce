"""ModelInterface (the typed manifest), Predictor.infer's typed Prediction, parse_version."""

from __future__ import annotations

import numpy as np
import pytest

from model import Predictor, parse_version
from model.interface import ModelInterface
from tests.factories import random_housing, random_images


def test_regressor_interface_from_its_manifest(regressor_dir):
    iface = Predictor.from_artifact(regressor_dir).interface
    assert iface.task == "regression" and iface.input_shape == (13,)
    assert iface.features[5] == "RM" and iface.value_range is None and iface.labels is None
    assert [t.as_dict() for t in iface.inputs] == [
        {"name": "features", "datatype": "FP32", "shape": [-1, 13]}]
    assert [t.as_dict() for t in iface.outputs] == [
        {"name": "MEDV", "datatype": "FP32", "shape": [-1]}]


def test_classifier_interface_and_typed_prediction(classifier_dir):
    predictor = Predictor.from_artifact(classifier_dir)
    iface = predictor.interface
    assert iface.input_name == "images" and iface.output_names == ("probabilities", "label")
    assert iface.value_range == (0.0, 255.0) and len(iface.labels) == 10
    images = random_images(3)
    pred = predictor.infer(predictor.check(images))
    np.testing.assert_array_equal(pred.probabilities, predictor.predict(images))
    np.testing.assert_array_equal(pred.labels, pred.probabilities.argmax(axis=1))
    assert pred.labels.dtype == np.int64 and pred.arrays == (pred.probabilities, pred.labels)


def test_regression_prediction_is_the_values(regressor_dir):
    predictor = Predictor.from_artifact(regressor_dir)
    rows = random_housing(4)
    pred = predictor.infer(predictor.check(rows))
    np.testing.assert_array_equal(pred.values, predictor.predict(rows))
    assert len(pred.arrays) == 1 and pred.values.flags.c_contiguous


def test_manifest_names_override_the_default_tensor_names():
    manifest = {"task": "classification", "input": {"shape": [8, 8], "name": "pixels"},
                "output": {"labels": ["a", "b"]}}
    iface = ModelInterface.from_manifest(manifest)
    assert iface.input_name == "pixels" and iface.outputs[0].shape == (-1, 2)
    plain = ModelInterface.from_manifest({"task": "regression", "input": {"shape": [3]},
                                          "output": {}})
    assert plain.input_name == "inputs" and plain.output_names == ("prediction",)
    with pytest.raises(ValueError, match="unknown task"):
        ModelInterface.build("ranking", (3,))


@pytest.mark.parametrize("text,expected", [
    ("1", 1), ("12", 12), ("0", None), ("01", None), (".tmp-3", None), ("latest", None),
    ("1234567890", None), ("", None), ("-1", None)])
def test_parse_version_is_the_one_version_rule(text, expected):
    assert parse_version(text) == expected
