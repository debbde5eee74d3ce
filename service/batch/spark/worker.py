"""What Spark's Python workers run (``DataFrame.mapInArrow``): each Arrow batch of the input
read and scored by the local engine's own code, answered as one table of predictions and
errors that the driver splits into the output and the error dataset."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import orjson
import pyarrow as pa

from model.interface import ModelInterface

from ..inputs import RowError
from ..inputs.arrow_batches import ArrowPlan, arrow_chunk
from ..scoring import Scored, score_chunk
from ..tables import prediction_arrays, prediction_fields
from .artifact import ShippedModel, worker_model

#: columns of the workers' answer besides the id and the predictions
TARGET, ERROR = "_target", "_error"


def result_schema(sig: ModelInterface, id_field: pa.Field) -> pa.Schema:
    """The workers' answer: id, predictions, true value (or null), error record (JSON, or
    null for a scored row)."""
    return pa.schema([id_field, *prediction_fields(sig), pa.field(TARGET, pa.float64()),
                      pa.field(ERROR, pa.string())])


@dataclass(frozen=True)
class ScoringTask:
    """Everything a worker needs, pickled once into the job."""

    model: ShippedModel
    plan: ArrowPlan
    id_column: str
    schema: pa.Schema

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        model = worker_model(self.model)
        for batch in batches:
            scored = score_chunk(model, arrow_chunk(batch, self.plan, model.interface, 0))
            ids = batch.column(self.id_column)
            if len(scored.rows):
                yield self._scored(model.interface, ids, scored)
            if scored.errors:
                yield self._errors(ids, scored.errors)

    def _scored(self, sig: ModelInterface, ids: pa.Array, scored: Scored) -> pa.RecordBatch:
        assert scored.prediction is not None
        n = len(scored.rows)
        targets = pa.nulls(n, pa.float64()) if scored.targets is None else \
            pa.array(scored.targets, pa.float64(), mask=np.isnan(scored.targets))
        return pa.record_batch([ids.take(scored.rows), *prediction_arrays(sig, scored.prediction),
                                targets, pa.nulls(n, pa.string())], schema=self.schema)

    def _errors(self, ids: pa.Array, errors: list[RowError]) -> pa.RecordBatch:
        taken = ids.take(pa.array([e.row for e in errors], pa.int64()))
        records = [orjson.dumps({self.id_column: key.as_py(),
                                 **{k: v for k, v in e.as_dict().items() if k != "row"}}).decode()
                   for key, e in zip(taken, errors, strict=True)]
        n = len(errors)
        return pa.record_batch([taken, *(pa.nulls(n, f.type) for f in list(self.schema)[1:-1]),
                                pa.array(records, pa.string())], schema=self.schema)
