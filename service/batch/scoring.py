"""Score an input file chunk by chunk: screen each chunk with the service's own checks,
predict the good rows (locally, or through a running service), write results in order.

Chunks are scored by a bounded pool of threads (NumPy releases the GIL in its loops and in
BLAS; remote requests wait on the network), while the main thread reads the next chunks and
writes finished ones in input order; at most ``2 * workers`` chunks are in memory.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from model.interface import ModelInterface, Prediction

from ..core.errors import NotFound, NotReady, first_message
from ..core.registry import ModelVersion, load_one, load_version
from ..core.screening import screen_instances, screen_rows
from .errors import UsageError
from .inputs import Chunk, RowError, Source
from .outputs import TargetMetrics, Writer


class ScoringModel(Protocol):
    """What scoring needs of a model, local or remote."""

    name: str
    version: int
    interface: ModelInterface

    def predict(self, x: np.ndarray) -> tuple[Prediction, dict[int, Any]]:
        """(outputs for the rows of x it accepted, {index in x: details} of rows it refused)."""
        ...


class LocalModel:
    """A model version loaded from its artifact folder, predicted as the service does."""

    def __init__(self, mv: ModelVersion, skipped: list[str] | None = None) -> None:
        if mv.predictor is None or mv.interface is None:
            raise UsageError(f"model {mv.name!r} version {mv.version} did not load: {mv.error}")
        self.name, self.version = mv.name, mv.version
        self.interface: ModelInterface = mv.interface
        self.path = mv.path
        self.skipped = skipped or []
        self._predictor = mv.predictor

    @classmethod
    def find(cls, artifacts: Path, name: str, version: str | None) -> LocalModel:
        """The named version in an artifacts folder, or the latest that loads."""
        if not artifacts.is_dir():
            raise UsageError(f"artifacts folder {artifacts} does not exist (give --artifacts "
                             "or set SERVICE_ARTIFACTS_DIR)")
        try:
            mv, failed = load_one(artifacts, name, version)
        except (NotFound, NotReady) as exc:
            raise UsageError(f"{exc.message} (in {artifacts})") from None
        return cls(mv, [f"version {v.version} did not load: {v.error}"
                        for v in reversed(failed)])

    @classmethod
    def folder(cls, name: str, version: int, path: Path) -> LocalModel:
        """One version folder wherever it is (a Spark worker's copy), checked as it loads."""
        return cls(load_version(name, version, path))

    def predict(self, x: np.ndarray) -> tuple[Prediction, dict[int, Any]]:
        return self._predictor.infer(x), {}


@dataclass
class Scored:
    """A chunk's outcome: record numbers and outputs of the scored rows, their targets,
    and the rows that failed (sorted by record number)."""

    rows: np.ndarray
    prediction: Prediction | None
    targets: np.ndarray | None
    errors: list[RowError]
    consumed: int


def score_chunk(model: ScoringModel, chunk: Chunk) -> Scored:
    """Screen a chunk with the service's checks and predict its good rows."""
    sig = model.interface
    if chunk.values is not None:
        screened = screen_rows(sig, chunk.values)
    else:
        screened = screen_instances(sig, chunk.instances or [], chunk.check_booleans)
    errors = list(chunk.errors)
    errors += [RowError(int(chunk.rows[i]), chunk.line(i), first_message(d), d)
               for i, d in screened.problems.items()]
    good = screened.good
    prediction = None
    if len(good):
        prediction, refused = model.predict(screened.x)
        if refused:
            errors += [RowError(int(chunk.rows[good[i]]), chunk.line(int(good[i])),
                                first_message(d), d) for i, d in refused.items()]
            good = np.delete(good, sorted(refused))
    errors.sort(key=lambda e: e.row)
    targets = chunk.targets[good] if chunk.targets is not None else None
    return Scored(chunk.rows[good], prediction, targets, errors, chunk.consumed)


@dataclass
class Summary:
    """What a run did."""

    scored: int = 0
    failed: int = 0
    seconds: float = 0.0
    metrics: dict[str, float | int] | None = None
    unlabelled: int = 0
    errors_path: Path | str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.scored + self.failed


def run(source: Source, model: ScoringModel, writer: Writer, *, chunk_size: int, workers: int,
        progress: Callable[[int], Any] | None = None) -> Summary:
    """Score every chunk of ``source`` with ``model`` and write the results in order.

    The caller commits or discards ``writer``. Exceptions (a bad file found mid-way, an
    unreachable service) propagate after the pool has stopped.
    """
    started = time.perf_counter()
    metrics = TargetMetrics(model.interface)
    pending: deque[Future[Scored]] = deque()

    def finish(scored: Scored) -> None:
        writer.write(scored.rows, scored.prediction, scored.errors)
        metrics.add(scored.prediction, scored.targets)
        if progress is not None:
            progress(scored.consumed)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch")
    try:
        for chunk in source.chunks(chunk_size):
            pending.append(pool.submit(score_chunk, model, chunk))
            while len(pending) > 2 * workers or (pending and pending[0].done()):
                finish(pending.popleft().result())
        while pending:
            finish(pending.popleft().result())
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
    return Summary(scored=writer.scored, failed=writer.failed,
                   seconds=time.perf_counter() - started, metrics=metrics.result(),
                   unlabelled=metrics.missing if source.has_targets else 0)
