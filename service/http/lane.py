"""``ModelLane``: one prediction at a time per worker, a bounded wait for it, and long
computations off the event loop.

One lane per worker process (one worker per core, one BLAS thread each). A prediction
request holds the lane from the end of its body to its answer (parsing, validation, the
forward pass, serialisation); the others wait for it in a FIFO that ``SERVICE_MAX_QUEUE``
(how many may wait) and ``SERVICE_MAX_WAIT`` (how long one may have waited since its first
bytes arrived) bound: beyond either, ``Overloaded`` (503 with ``Retry-After``) at once.

Under the gevent worker (service/http/worker.py) a forward pass expected to take more than
``OFFLOAD_AFTER`` seconds runs in one native thread (a gevent ``ThreadPool`` of size 1;
NumPy and BLAS release the GIL), so the event loop keeps accepting, reading and counting
the requests that arrive meanwhile and sheds the excess at once. Only ``predictor.infer``
runs there: Flask's request context, metrics and logging stay on the request's greenlet;
``Predictor.infer`` is thread-safe and the registry is read on the greenlet only. A
shorter forward pass runs on the event loop: the hand-off costs ~45 µs (measured), more
than a one-row MNIST-MLP forward pass (~40 µs). Parsing runs on the event loop too, and
only for the lane's holder: parsing other requests while the thread computes made the two
fight over the GIL (a 128-image CNN request at 4 clients: 31 instead of 46 answers in 4 s).
docs/ROBUSTNESS.md has the measurements. Without gevent (tests, a sync worker) there is no
concurrency to order: everything runs inline and only the admission checks act.
"""

from __future__ import annotations

import collections
import sys
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from model import Predictor
from model.interface import Prediction

from ..core.errors import Overloaded

#: Predictions expected to compute longer than this (seconds) leave the event loop.
OFFLOAD_AFTER = 0.001
#: The GIL switch interval of a worker once its model thread runs (Python's default: 5 ms).
#: While the event loop holds the GIL (reading, refusing requests) the thread waits up to
#: this long to take it back after each NumPy call that released it. Measured, 3x overload
#: of the default CNN: served 91, 92, 86, 92% of capacity with 0.5 ms; 96, 76, 66, 92,
#: 83, 73% with 5 ms (docs/BENCHMARKS.md).
SWITCH_INTERVAL = 0.0005
#: Weight of the newest measurement in a model's seconds-per-row estimate.
_SMOOTHING = 0.2


def _under_gevent() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("socket")


class ModelLane:
    """Admission (queue length, wait) and execution of one worker's predictions."""

    def __init__(self, max_queue: int, max_wait: float, threaded: bool | None = None,
                 offload_after: float = OFFLOAD_AFTER) -> None:
        self.max_queue = max_queue
        self.max_wait = max_wait
        self.retry_after = max(1, round(max_wait))
        self.offload_after = offload_after
        self.threaded = _under_gevent() if threaded is None else threaded
        #: Prediction requests waiting for the lane (not counting its holder).
        self.pending = 0
        self._busy = False  # a request holds the lane
        self._queue: collections.deque[Any] = collections.deque()  # gevent Events, FIFO
        self._pool: Any = None  # created on first use: after gunicorn's fork
        self._seconds_per_row: weakref.WeakKeyDictionary[Predictor, float] = (
            weakref.WeakKeyDictionary())

    # -- admission ------------------------------------------------------------------------
    @contextmanager
    def admitted(self, arrived: float) -> Iterator[None]:
        """Hold the lane for a request whose first bytes arrived at ``arrived`` (epoch
        seconds); Overloaded when too many wait, or once it has waited too long."""
        self._acquire(arrived)
        try:
            yield
        finally:
            self._release()

    def overloaded(self, arrived: float) -> Overloaded:
        """The error for a request that arrived at ``arrived`` and waited too long."""
        return self._overloaded("wait", f"it waited {time.time() - arrived:.2f} s for a "
                                "worker")

    @property
    def full(self) -> bool:
        """A prediction arriving now would be refused: the lane is held and
        ``max_queue`` requests already wait for it (never without gevent)."""
        return self.threaded and self._busy and self.pending >= self.max_queue

    def queue_full(self) -> Overloaded:
        """The error for a request that finds the queue full."""
        return self._overloaded("queue", f"{self.pending} requests are already waiting")

    def _overloaded(self, reason: str, why: str) -> Overloaded:
        return Overloaded(f"the server is overloaded ({why}); retry after "
                          f"{self.retry_after} s",
                          {"reason": reason, "max_queue": self.max_queue,
                           "max_wait_s": self.max_wait}, self.retry_after)

    def _acquire(self, arrived: float) -> None:
        if time.time() - arrived > self.max_wait:
            raise self.overloaded(arrived)
        if not self.threaded:
            return
        if not self._busy and not self._queue:
            self._busy = True
            return
        if self.pending >= self.max_queue:
            raise self.queue_full()
        from gevent.event import Event
        turn = Event()
        self._queue.append(turn)
        self.pending += 1
        try:
            handed = turn.wait(max(0.0, arrived + self.max_wait - time.time()))
        except BaseException:  # killed while waiting (a stop): leave the lane usable
            if turn.is_set():
                self._release()
            else:
                self._queue.remove(turn)
            raise
        finally:
            self.pending -= 1
        if not handed:
            self._queue.remove(turn)
            raise self.overloaded(arrived)
        # _release handed the lane over with _busy still True

    def _release(self) -> None:
        if not self.threaded:
            return
        if self._queue:
            self._queue.popleft().set()
        else:
            self._busy = False

    # -- execution ------------------------------------------------------------------------
    def run(self, predictor: Predictor, x: np.ndarray) -> Prediction:
        """``predictor.infer(x)``: in the thread when it is expected to take long (or has
        never been measured), else here; a ``DataPlane`` runner."""
        estimate = self._seconds_per_row.get(predictor)
        if self.threaded and (estimate is None or estimate * len(x) >= self.offload_after):
            if self._pool is None:
                from gevent.threadpool import ThreadPool
                self._pool = ThreadPool(1)
                sys.setswitchinterval(SWITCH_INTERVAL)
            out, seconds = self._pool.apply(_timed, (predictor, x))
        else:
            out, seconds = _timed(predictor, x)
        # learnt on the event loop, never in the thread
        per_row = seconds / max(1, len(x))
        self._seconds_per_row[predictor] = per_row if estimate is None else (
            estimate + _SMOOTHING * (per_row - estimate))
        return out


def _timed(predictor: Predictor, x: np.ndarray) -> tuple[Prediction, float]:
    """``predictor.infer(x)`` and the seconds it took."""
    t0 = time.perf_counter()
    out = predictor.infer(x)
    return out, time.perf_counter() - t0
