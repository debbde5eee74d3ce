"""Requests in progress per gunicorn worker, in memory the master shares with its workers.

Kept-alive connections stay with the worker that accepted them, so eight clients can end up
on one worker while another idles. Each worker publishes how many requests it is serving;
a worker serving more than one above the least busy one answers with ``Connection: close``,
and the client's next connection goes to whichever worker accepts first: an idle one.
"""

from __future__ import annotations

import mmap
import struct
from typing import Any

SLOTS = 256
_INT = struct.Struct("=i")


class SharedCounts:
    """One int per worker slot in an anonymous shared mapping (created before fork)."""

    def __init__(self) -> None:
        self.memory = mmap.mmap(-1, SLOTS * _INT.size)
        self.view = memoryview(self.memory).cast("i")

    def set(self, slot: int, value: int) -> None:
        self.view[slot] = value

    def least_other(self, slot: int, workers: int) -> int:
        """The smallest count among the first ``workers`` slots other than ``slot``."""
        view = self.view
        return min((view[i] for i in range(min(workers, SLOTS)) if i != slot), default=0)

    def assign(self, server: Any, worker: Any) -> None:
        """gunicorn pre_fork hook (master): give ``worker`` the lowest free slot, zeroed."""
        used = {getattr(w, "slot", None) for w in server.WORKERS.values()}
        slot = next((i for i in range(SLOTS) if i not in used), SLOTS - 1)
        worker.slot = slot
        self.view[slot] = 0
