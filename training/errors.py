"""The trainer's exceptions: a data file that cannot be used, a model that cannot be exported
(the command line exits 2), a missing optional dependency (exit 1).

``DataError`` lives in ``model.errors`` since the IDX reader (``model.idx``) that the trainer
and the batch scorer share raises it; it is re-exported here for the trainer's modules.
"""

from __future__ import annotations

from model.errors import DataError

__all__ = ["DataError", "ExportError", "MissingExtraError"]


class ExportError(Exception):
    """A model that cannot be exported as asked (a layer or step the format cannot express,
    an output that cannot be written); the command line exits 2."""


class MissingExtraError(Exception):
    """An optional dependency is not installed (e.g. ``pip install '.[export]'``); exit 1."""
