"""The library's exceptions: one base class, no HTTP or exit codes (callers map them)."""

from __future__ import annotations

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
