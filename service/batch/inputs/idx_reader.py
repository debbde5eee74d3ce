"""IDX input: images (raw or gzip) read in chunks straight into NumPy, labels from a sibling
or given labels file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from model.errors import DataError
from model.idx import IdxReader, read_idx
from model.interface import ModelInterface

from .source import Chunk, Source, usable_targets


class IdxSource(Source):
    """IDX images (raw or gzip) and, when given or found beside them, their IDX labels."""

    format = "idx"
    unit = "rows"

    def __init__(self, path: Path, sig: ModelInterface, labels: Path | None) -> None:
        super().__init__(path, sig)
        self._reader = IdxReader(path)
        try:
            shape = self._reader.record_shape
            if shape not in (sig.input_shape, (sig.input_size,)):
                want = "x".join(map(str, sig.input_shape))
                raise DataError(path, f"records are {'x'.join(map(str, shape)) or 'scalars'}, "
                                      f"but the model takes {want} values")
            if self._reader.records == 0:
                raise DataError(path, "no records (the header says 0)")
            self.total = self._reader.records
            self.labels_path = labels
            self.labels = self._labels(labels) if labels is not None else None
        except BaseException:
            self._reader.close()
            raise
        self.has_targets = self.labels is not None

    def _labels(self, path: Path) -> np.ndarray:
        labels = read_idx(path)
        if labels.ndim != 1:
            raise DataError(path, f"expected 1-D labels, found {labels.ndim}-D data of shape "
                                  f"{labels.shape}")
        if len(labels) != self.total:
            raise DataError(path, f"{len(labels)} labels for the {self.total} records of "
                                  f"{self.path.name}")
        return labels

    def chunks(self, rows: int) -> Iterator[Chunk]:
        start = 0
        for block in self._reader.chunks(rows):
            k = len(block)
            targets = None if self.labels is None else \
                usable_targets(self.labels[start:start + k], self.sig)
            yield Chunk(rows=np.arange(start, start + k, dtype=np.int64), lines=None,
                        values=block, targets=targets, consumed=k)
            start += k

    def close(self) -> None:
        self._reader.close()
