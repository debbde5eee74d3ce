"""The trainer's exceptions: a data file that cannot be used (the command line exits 2)."""

from __future__ import annotations

import os


class DataError(Exception):
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
