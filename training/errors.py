"""The trainer's exceptions: a data file that cannot be used (the command line exits 2).

``DataError`` lives in ``model.errors`` since the IDX reader (``model.idx``) that the trainer
and the batch scorer share raises it; it is re-exported here for the trainer's modules.
"""

from __future__ import annotations

from model.errors import DataError

__all__ = ["DataError"]
