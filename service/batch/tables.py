"""Predictions as Arrow columns: the one column layout of table outputs (Parquet locally,
Parquet or CSV from Spark), the same as the CSV output's: ``row, prediction`` for a
regressor, ``row, label, p0..p9`` for a classifier (labels named by the interface)."""

from __future__ import annotations

import pyarrow as pa

from model.interface import ModelInterface, Prediction


def prediction_fields(sig: ModelInterface) -> list[pa.Field]:
    """The output columns after the row id: float32 prediction, or int64 label and float32
    probabilities ``p<class>``."""
    if sig.task != "classification":
        return [pa.field("prediction", pa.float32())]
    return [pa.field(sig.output_names[-1], pa.int64()),
            *(pa.field(f"p{label}", pa.float32()) for label in sig.labels or ())]


def output_schema(sig: ModelInterface, row: pa.Field) -> pa.Schema:
    """``row`` (the record number, or the user's id column) and the prediction columns."""
    return pa.schema([row, *prediction_fields(sig)])


def prediction_arrays(sig: ModelInterface, prediction: Prediction) -> list[pa.Array]:
    """The prediction columns of ``prediction``, in ``prediction_fields`` order."""
    if sig.task != "classification":
        return [pa.array(prediction.values, pa.float32())]
    probs = prediction.probabilities
    return [pa.array(prediction.labels, pa.int64()),
            *(pa.array(probs[:, j], pa.float32()) for j in range(probs.shape[1]))]
