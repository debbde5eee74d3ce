"""The library's exceptions: one base class, no HTTP or exit codes (callers map them)."""

from __future__ import annotations

import os
from typing import Any


class ModelError(Exception):
    """Base class of every error the model library raises on purpose."""


class ConfigError(ModelError):
    """A layer, network or preprocessing configuration is invalid."""


class ArtifactError(ModelError):
    """An artifact folder cannot be trusted: missing file, bad manifest, checksum or shape."""


class InputError(ModelError):
    """Input data does not fit the model (shape, type, non-finite or out-of-range values).

    ``details`` maps a row index (int) or a field name to a list of messages, so callers can
    point at the offending instance; ``rows`` lists the bad row indices when rows were checked.
    """

    def __init__(self, message: str, details: dict[Any, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[Any, list[str]] = details or {}

    @property
    def rows(self) -> list[int]:
        """Indices of the rows named in ``details``, sorted."""
        return sorted(k for k in self.details if isinstance(k, int))


class DataError(ModelError):
    """A data file cannot be used.

    ``str()`` is a message a person can act on: ``"<path>: <record>: <problem>"``, for example
    ``"data/housing.csv: line 17, column RM: 'abc' is not a number"``; the record part is left
    out when the problem concerns the whole file.

    Attributes:
        path: the file (or folder) as given, as a string.
        problem: what is wrong, in words.
        record: where in the file (``"line 17"``, ``"record 3"``, ``"header"``) or None.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str,
                 record: str | None = None) -> None:
        # args keep the constructor's arguments so the error pickles and copies correctly
        super().__init__(os.fspath(path), problem, record)
        self.path = os.fspath(path)
        self.problem = problem
        self.record = record

    def __str__(self) -> str:
        where = f"{self.record}: " if self.record else ""
        return f"{self.path}: {where}{self.problem}"
