"""What Spark's Python workers run (``DataFrame.mapInArrow``): each Arrow batch of the input
read and scored by the local engine's own code.

A job makes one pass over its input: the workers answer only the scored rows (the output
dataset, written as it streams by) and add what the metrics and the summary need to an
accumulator (``Tally``), so nothing is cached and nothing is scored twice. Only when some
rows failed does a second pass (``ErrorTask``) list them for the error dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
import pyarrow as pa

from model.interface import ModelInterface

from ..inputs import RowError
from ..inputs.arrow_batches import ArrowPlan, arrow_chunk
from ..outputs import TargetMetrics
from ..scoring import Scored, score_chunk
from ..tables import output_schema, prediction_arrays
from .artifact import ShippedModel, worker_model

if TYPE_CHECKING:
    from pyspark import Accumulator

#: the error dataset's one column: a JSON record a row
ERROR = "value"


class Counts(NamedTuple):
    """Rows scored and failed, and the sums behind the metrics (``TargetMetrics``'s)."""

    scored: int = 0
    failed: int = 0
    n: int = 0
    missing: int = 0
    correct: int = 0
    squared: float = 0.0
    absolute: float = 0.0

    def __add__(self, other: Any) -> Counts:  # type: ignore[override]
        return Counts(*(a + b for a, b in zip(self, other, strict=True)))

    def metrics(self, sig: ModelInterface) -> TargetMetrics:
        """The metrics of these counts, as the local engine computes them."""
        metrics = TargetMetrics(sig)
        metrics.n, metrics.missing, metrics.correct = self.n, self.missing, self.correct
        metrics.squared, metrics.absolute = self.squared, self.absolute
        return metrics


def tally_param() -> Any:
    """The AccumulatorParam of ``Counts`` (pyspark imported only where Spark runs)."""
    from pyspark.accumulators import AccumulatorParam

    class Tally(AccumulatorParam):  # type: ignore[type-arg]
        def zero(self, value: Counts) -> Counts:
            return Counts()

        def addInPlace(self, value1: Counts, value2: Counts) -> Counts:
            return Counts(*value1) + value2

    return Tally()


def scores_schema(sig: ModelInterface, id_field: pa.Field, listed: bool = False) -> pa.Schema:
    """The workers' answer, the output dataset's columns: the id and the predictions
    (``listed``: a classifier's probabilities as one list column)."""
    return output_schema(sig, id_field, listed)


@dataclass(frozen=True)
class ScoringTask:
    """Score every batch; answer the scored rows, add the counts to ``tally``. Everything
    a worker needs, pickled once into the job."""

    model: ShippedModel
    plan: ArrowPlan
    id_column: str
    schema: pa.Schema
    tally: Accumulator[Counts]
    listed: bool = False

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        model = worker_model(self.model)
        sig = model.interface
        metrics = TargetMetrics(sig)
        scored = failed = 0
        for batch in batches:
            result = score_chunk(model, arrow_chunk(batch, self.plan, sig, 0))
            failed += len(result.errors)
            if len(result.rows):
                assert result.prediction is not None
                scored += len(result.rows)
                metrics.add(result.prediction, result.targets)
                yield scored_batch(sig, self.schema, batch.column(self.id_column), result,
                                   self.listed)
        # once a task: Spark merges a task's accumulator updates only if it succeeds
        self.tally.add(Counts(scored, failed, metrics.n, metrics.missing, metrics.correct,
                              metrics.squared, metrics.absolute))


@dataclass(frozen=True)
class ErrorTask:
    """The second pass, run only when some rows failed: each failed row's error record
    (JSON: the id, the message, the service's details), in input order."""

    model: ShippedModel
    plan: ArrowPlan
    id_column: str

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        model = worker_model(self.model)
        for batch in batches:
            errors = score_chunk(model, arrow_chunk(batch, self.plan, model.interface, 0)).errors
            if errors:
                lines = error_lines(self.id_column, batch.column(self.id_column), errors)
                yield pa.record_batch([pa.array([line[:-1].decode() for line in lines],
                                                pa.string())], names=[ERROR])


def scored_batch(sig: ModelInterface, schema: pa.Schema, ids: pa.Array, scored: Scored,
                 listed: bool = False) -> pa.RecordBatch:
    """The output rows of a scored batch: each scored row's id (``scored.rows`` index
    ``ids``) and its predictions."""
    assert scored.prediction is not None
    if len(scored.rows) < len(ids):
        ids = ids.take(pa.array(scored.rows, pa.int64()))
    return pa.record_batch([ids, *prediction_arrays(sig, scored.prediction, listed)],
                           schema=schema)


def error_lines(key: str, ids: pa.Array, errors: list[RowError]) -> list[bytes]:
    """Each failed row's error record, a JSON line: its id (``errors``' rows index ``ids``)
    under ``key``, the message and the service's details."""
    taken = ids.take(pa.array([e.row for e in errors], pa.int64()))
    return [orjson.dumps({key: value.as_py(),
                          **{k: v for k, v in e.as_dict().items() if k != "row"}}) + b"\n"
            for value, e in zip(taken, errors, strict=True)]
