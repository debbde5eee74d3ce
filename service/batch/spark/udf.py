"""``model_udf``: a model as a Spark column function, for people who already have a
DataFrame (as MLflow's ``spark_udf``): ``df.withColumn("price", udf(*feature_columns))``,
or registered for SQL. Rows the service would refuse give null."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..inputs.arrow_batches import ArrowPlan, arrow_chunk
from ..scoring import LocalModel, score_chunk
from .artifact import ShippedModel, ship, worker_model

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def model_udf(spark: SparkSession, artifact: str | Path) -> Any:
    """A column function of the model version folder ``artifact`` (e.g.
    ``artifacts/housing/1``): called with the 13 feature columns in the manifest's order
    (housing) or 784 pixel columns or one array column (digits), it returns a float
    (regression) or a struct ``label`` (long), ``probabilities`` (array<float>)."""
    from pyspark.sql.functions import arrow_udf

    path = Path(artifact)
    version = int(path.name) if path.name.isdigit() else 0
    model = LocalModel.folder(path.parent.name, version, path)
    shipped = ship(spark.sparkContext, model)
    sig = model.interface
    classification = sig.task == "classification"
    returns = f"struct<{sig.output_names[-1]}: bigint, {sig.output_names[0]}: array<float>>" \
        if classification else "float"

    def predict(*columns: pa.Array) -> pa.Array:
        return _predict(shipped, columns)

    return arrow_udf(predict, returns)


def _predict(shipped: ShippedModel, columns: tuple[pa.Array, ...]) -> pa.Array:
    """One Arrow batch of input columns scored; null where a row cannot be."""
    model = worker_model(shipped)
    sig = model.interface
    names = [f"c{i}" for i in range(len(columns))]
    batch = pa.RecordBatch.from_arrays(list(columns), names=names)
    listed = names[0] if len(columns) == 1 and sig.input_size > 1 else None
    plan = ArrowPlan(() if listed else tuple(names), listed, None)
    scored = score_chunk(model, arrow_chunk(batch, plan, sig, 0))
    n = batch.num_rows
    valid = np.zeros(n, bool)
    valid[scored.rows] = True
    if sig.task != "classification":
        values = np.zeros(n, np.float32)
        if scored.prediction is not None:
            values[scored.rows] = scored.prediction.values
        return pa.array(values, pa.float32(), mask=~valid)
    classes = len(sig.labels or ())
    probs = np.zeros((n, classes), np.float32)
    labels = np.zeros(n, np.int64)
    if scored.prediction is not None:
        probs[scored.rows] = scored.prediction.probabilities
        labels[scored.rows] = scored.prediction.labels
    lists = pa.FixedSizeListArray.from_arrays(pa.array(probs.ravel()), classes) \
        .cast(pa.list_(pa.float32()))
    return pa.StructArray.from_arrays([pa.array(labels), lists],
                                      names=list(reversed(sig.output_names)),
                                      mask=pa.array(~valid))
