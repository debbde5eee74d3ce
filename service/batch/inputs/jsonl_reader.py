"""JSON Lines input: one V1 instance a line, optionally with its true value."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import DataError
from model.interface import ModelInterface

from ...core import jsonio
from ...core.errors import MalformedJSON
from .source import Chunk, RowError, TextSource, usable_targets


class JsonlSource(TextSource):
    """JSON Lines: each non-blank line one record.

    A record is an instance exactly as in the V1 API's ``instances`` (housing: an object of
    the named features or a list of them; mnist: 784 numbers or 28 lists of 28), or
    ``{"instance": <instance>, "label": <true value or class>}``. A tabular object may also
    carry its target under the model's output name (e.g. ``"MEDV": 24.0``).
    """

    format = "jsonl"
    binary = True

    def __init__(self, path: Path, sig: ModelInterface) -> None:
        super().__init__(path, sig)
        self.has_targets = True

    def chunks(self, rows: int) -> Iterator[Chunk]:
        while lines := self._lines(rows):
            yield self._parse(lines)
        if self.row == 0:
            raise DataError(self.path, "empty file: expected one JSON instance a line"
                            if self.line == 0 else "no records (only blank lines)")

    def _parse(self, lines: list[bytes]) -> Chunk:
        first_line = self.line + 1
        if self.line == 0 and lines[0].startswith(b"\xef\xbb\xbf"):
            lines[0] = lines[0][3:]  # a UTF-8 byte-order mark
        self.line += len(lines)
        instances: list[Any] = []
        rows: list[int] = []
        numbers: list[int] = []
        targets: list[float] = []
        errors: list[RowError] = []
        for pos, raw in enumerate(lines):
            text = raw.strip()
            if not text:
                continue
            row, self.row = self.row, self.row + 1
            try:
                obj = jsonio.loads(text, record=True)
            except MalformedJSON as exc:
                errors.append(RowError(row, first_line + pos, exc.message))
                continue
            instance, target, problem = self._unwrap(obj)
            if problem:
                errors.append(RowError(row, first_line + pos, problem))
                continue
            instances.append(instance)
            rows.append(row)
            numbers.append(first_line + pos)
            targets.append(target)
        return Chunk(rows=np.asarray(rows, np.int64), lines=np.asarray(numbers, np.int64),
                     instances=instances,
                     check_booleans=jsonio.may_hold_booleans(b"".join(lines), {}),
                     targets=usable_targets(np.asarray(targets, np.float64), self.sig),
                     errors=errors, consumed=self._progress())

    def _unwrap(self, obj: Any) -> tuple[Any, float, str | None]:
        """(instance, target or NaN, problem or None) of one parsed record."""
        if type(obj) is dict and "instance" in obj:
            extra = sorted(set(obj) - {"instance", "label"})
            if extra:
                return None, np.nan, (f"unexpected keys {', '.join(map(repr, extra))}: a record "
                                      'is an instance or {"instance": ..., "label": ...}')
            return obj["instance"], _number(obj.get("label")), None
        target = self.sig.outputs[0].name
        if type(obj) is dict and self.sig.features is not None and target in obj:
            obj = dict(obj)
            return obj, _number(obj.pop(target)), None
        return obj, np.nan, None


def _number(value: Any) -> float:
    return float(value) if type(value) is int or type(value) is float else np.nan

