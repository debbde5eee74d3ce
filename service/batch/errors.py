"""The batch scorer's failures, each with the exit code the command line ends with.

A file that cannot be used at all is ``model.DataError`` (exit 2), raised by the readers.
"""

from __future__ import annotations


class BatchError(Exception):
    """A failure the command line reports in one line and ends with ``exit_code``."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(BatchError):
    """Bad arguments: unknown model or version, unusable output path, conflicting options."""

    exit_code = 2


class ServiceFailure(BatchError):
    """The remote service is unreachable after the retries or answers unexpectedly."""

    exit_code = 1
