"""Score a saved artifact on labelled data with the same Predictor the service uses."""

from __future__ import annotations

import os
from typing import Any

from model import Predictor

from .datasets import load_housing, load_labelled_digits
from .report import classification_metrics, regression_metrics


def evaluate(model_dir: str | os.PathLike, data: str | os.PathLike) -> dict[str, Any]:
    """Metrics of the artifact at ``model_dir`` on the whole of ``data``.

    Regression: ``rmse``, ``mae``, ``n`` on a housing file. Classification: ``accuracy``,
    ``loss``, ``n`` and ``confusion`` (rows: true label) on a folder of IDX files (its t10k
    pair if present, else its train pair). Raises ArtifactError, DataError or InputError.
    """
    predictor = Predictor.from_artifact(model_dir)
    if predictor.task == "regression":
        housing = load_housing(data)
        return regression_metrics(predictor.predict(housing.X), housing.y)
    images, labels, _ = load_labelled_digits(data)
    return classification_metrics(predictor.predict(images), labels, len(predictor.labels))
