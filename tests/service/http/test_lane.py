"""ModelLane: one holder at a time, a bounded FIFO, deadlines, and which forward passes leave
the event loop (greenlets in this process; the real gunicorn is in test_hardening_overload)."""

from __future__ import annotations

import threading
import time

import gevent
import gevent.event
import numpy as np
import pytest

from service.core.errors import Overloaded
from service.http.lane import ModelLane


def hold(lane: ModelLane, log: list, name: str, release: gevent.event.Event | None = None,
         arrived: float | None = None) -> None:
    """Greenlet body: take the lane, note it, keep it until ``release`` is set."""
    try:
        with lane.admitted(arrived or time.time()):
            log.append(("in", name))
            if release is not None:
                release.wait(5)
            log.append(("out", name))
    except Overloaded as exc:
        log.append((exc.details["reason"], name))


def test_one_holder_then_fifo_and_a_bounded_queue():
    lane = ModelLane(max_queue=2, max_wait=30, threaded=True)
    log: list = []
    release = gevent.event.Event()
    first = gevent.spawn(hold, lane, log, "a", release)
    gevent.sleep(0)
    waiting = [gevent.spawn(hold, lane, log, n) for n in ("b", "c")]
    gevent.sleep(0.01)
    assert log == [("in", "a")] and lane.pending == 2
    t0 = time.monotonic()
    hold(lane, log, "d")  # two already wait: refused without waiting
    assert log[-1] == ("queue", "d") and time.monotonic() - t0 < 0.5
    release.set()
    gevent.joinall([first, *waiting], timeout=5)
    assert log[1:] == [("queue", "d"), ("out", "a"), ("in", "b"), ("out", "b"),
                       ("in", "c"), ("out", "c")]
    assert lane.pending == 0
    hold(lane, log, "e")  # the lane is free again
    assert log[-1] == ("out", "e")


def test_a_waiting_request_is_refused_when_its_wait_limit_passes():
    lane = ModelLane(max_queue=8, max_wait=0.3, threaded=True)
    log: list = []
    release = gevent.event.Event()
    holder = gevent.spawn(hold, lane, log, "a", release)
    gevent.sleep(0)
    t0 = time.monotonic()
    hold(lane, log, "b", arrived=time.time())
    waited = time.monotonic() - t0
    assert log[-1] == ("wait", "b")
    assert 0.2 < waited < 3, waited  # at its limit (0.3 s), not when the holder is done
    assert lane.pending == 0
    release.set()
    holder.join(5)
    hold(lane, log, "c")
    assert log[-1] == ("out", "c")


def test_a_request_that_already_waited_too_long_is_refused_at_once():
    for threaded in (True, False):
        lane = ModelLane(max_queue=8, max_wait=1, threaded=threaded)
        with pytest.raises(Overloaded) as caught, lane.admitted(time.time() - 2):
            pass
        assert caught.value.details["reason"] == "wait" and caught.value.retry_after == 1


class FakePredictor:
    """Records the thread each forward pass ran in; ``seconds`` per call."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.threads: list[int] = []

    def infer(self, x: np.ndarray) -> str:
        self.threads.append(threading.get_ident())
        time.sleep(self.seconds)
        return "done"


def test_long_forward_passes_leave_the_event_loop_short_ones_do_not():
    lane = ModelLane(max_queue=8, max_wait=30, threaded=True, offload_after=0.005)
    here = threading.get_ident()
    slow, fast = FakePredictor(0.02), FakePredictor(0.001)
    x = np.zeros((4, 3), np.float32)
    assert [lane.run(slow, x) for _ in range(3)] == ["done"] * 3
    assert all(t != here for t in slow.threads)  # unmeasured, then measured long
    for _ in range(3):
        lane.run(fast, x)  # ~0.25 ms a row: 1 ms, under the 5 ms bound
    # the first (unmeasured) call goes to the thread, the measured short ones stay here
    assert fast.threads[0] != here and fast.threads[1:] == [here, here]
    lane.run(fast, np.zeros((100, 3), np.float32))  # 100 rows: ~25 ms expected
    assert fast.threads[-1] != here


def test_the_event_loop_runs_while_the_thread_computes():
    lane = ModelLane(max_queue=8, max_wait=30, threaded=True, offload_after=0.0)
    ticks: list[float] = []

    def ticker() -> None:
        for _ in range(10):
            ticks.append(time.monotonic())
            gevent.sleep(0.01)

    t = gevent.spawn(ticker)
    t0 = time.monotonic()
    lane.run(FakePredictor(0.3), np.zeros((1, 3), np.float32))
    t.join(5)
    assert len([x for x in ticks if x < t0 + 0.3]) >= 5  # ticked during the 0.3 s


def test_without_gevent_everything_runs_inline_and_nothing_waits():
    lane = ModelLane(max_queue=1, max_wait=30, threaded=False)
    pred = FakePredictor(0.0)
    with lane.admitted(time.time()), lane.admitted(time.time()):
        lane.run(pred, np.zeros((1, 3), np.float32))
    assert pred.threads == [threading.get_ident()]
