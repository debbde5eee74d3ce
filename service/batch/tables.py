"""Predictions as Arrow columns: the one column layout of table outputs (Parquet locally,
Parquet or CSV from Spark), the same as the CSV output's: ``row, prediction`` for a
regressor, ``row, label, p0..p9`` for a classifier (labels named by the interface), or
with ``listed`` (``--probabilities list``) ``row, label, probabilities``: one list column
of the class probabilities, as the JSON Lines output and the V2 API give them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from model.interface import ModelInterface, Prediction

from .errors import UsageError

#: --probabilities: one float32 column a class (p0..p9), or one list column
PROBABILITY_LAYOUTS = ("columns", "list")


def listed_probabilities(layout: str, sig: ModelInterface, out_format: str) -> bool:
    """Whether ``--probabilities layout`` asks for one list column; UsageError where it
    cannot be (a regressor; CSV output)."""
    if layout != "list":
        return False
    if sig.task != "classification":
        raise UsageError(f"--probabilities list is for classifiers; this model is a {sig.task} "
                         "model")
    if out_format == "csv":
        raise UsageError("--probabilities list needs .parquet output (CSV holds one column a "
                         "class, p0..p9)")
    return True


def prediction_fields(sig: ModelInterface, listed: bool = False) -> list[pa.Field]:
    """The output columns after the row id: float32 prediction, or int64 label and float32
    probabilities ``p<class>`` (``listed``: one column list<float32> named as the model's
    probabilities output)."""
    if sig.task != "classification":
        return [pa.field("prediction", pa.float32())]
    label = pa.field(sig.output_names[-1], pa.int64())
    if listed:
        return [label, pa.field(sig.output_names[0], pa.list_(pa.float32()))]
    return [label, *(pa.field(f"p{label}", pa.float32()) for label in sig.labels or ())]


def output_schema(sig: ModelInterface, row: pa.Field, listed: bool = False) -> pa.Schema:
    """``row`` (the record number, or the user's id column) and the prediction columns."""
    return pa.schema([row, *prediction_fields(sig, listed)])


def prediction_arrays(sig: ModelInterface, prediction: Prediction,
                      listed: bool = False) -> list[pa.Array]:
    """The prediction columns of ``prediction``, in ``prediction_fields`` order."""
    if sig.task != "classification":
        return [pa.array(prediction.values, pa.float32())]
    probs = prediction.probabilities
    labels = pa.array(prediction.labels, pa.int64())
    if listed:
        m, k = probs.shape
        offsets = pa.array(np.arange(0, (m + 1) * k, k, dtype=np.int32))
        values = pa.array(np.ascontiguousarray(probs, np.float32).ravel(), pa.float32())
        return [labels, pa.ListArray.from_arrays(offsets, values)]
    return [labels, *(pa.array(probs[:, j], pa.float32()) for j in range(probs.shape[1]))]
