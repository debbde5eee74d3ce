"""Picture input: a folder or a zip of picture files (PNG, JPEG, GIF, BMP, WebP), decoded and
prepared as the service does (``service.pictures``), with labels when the files say them.

Records are the picture files in sorted path order (``row`` 0, 1, ...). A file's label comes
from ``labels.csv`` in the folder or zip (or ``<name>.csv`` beside it, or ``--labels``): a
header ``file,label`` then one line a file (path relative to the folder); else from the
folder the file is in when its name is one of the model's class labels
(``digits/7/a.png``). A file that cannot be used is a RowError naming it.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np

from model.errors import DataError
from model.interface import ModelInterface

from ...core.errors import InvalidRequest
from ...core.signature import takes_pictures
from ...imaging import DEFAULT_MAX_PIXELS
from ...pictures import picture_images
from .source import Chunk, RowError, Source, usable_targets

SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")
LABELS_NAME = "labels.csv"
#: a picture file larger than this is refused before it is read (a zip can claim anything)
MAX_FILE_BYTES = 64 * 1024 * 1024


def is_picture_collection(path: Path) -> bool:
    """True for a folder or a .zip file: the picture input."""
    return path.is_dir() or path.name.lower().endswith(".zip")


class ImageSource(Source):
    """The picture files of a folder or a zip, in sorted path order."""

    format = "images"
    unit = "rows"

    def __init__(self, path: Path, sig: ModelInterface, labels: Path | None = None) -> None:
        super().__init__(path, sig)
        if not takes_pictures(sig):
            raise DataError(path, "this model does not take pictures; only digit "
                                  "classifiers (28x28 inputs) do")
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            self.names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*")
                                if p.is_file() and _is_picture(p.name))
        else:
            try:
                self._zip = zipfile.ZipFile(path)
            except (OSError, zipfile.BadZipFile) as e:
                raise DataError(path, f"not a readable zip file: {e}") from e
            self.names = sorted(i.filename for i in self._zip.infolist()
                                if not i.is_dir() and _is_picture(i.filename))
        if not self.names:
            self.close()
            raise DataError(path, f"no picture files ({', '.join(SUFFIXES)}) in it")
        self.total = len(self.names)
        self.targets = usable_targets(self._labels(labels), sig)
        self.has_targets = bool(np.isfinite(self.targets).any())

    def _labels(self, given: Path | None) -> np.ndarray:
        """(n,) float64 class indices of the files, NaN where none is known."""
        table = self._label_table(given)
        classes = {name: i for i, name in enumerate(self.sig.labels or ())}
        out = np.full(len(self.names), np.nan)
        for i, name in enumerate(self.names):
            label = table.get(name)
            if label is None:
                parent = PurePosixPath(name).parent.name
                label = parent if parent in classes else None
            if label is not None:
                out[i] = classes.get(label.strip(), np.nan)
        return out

    def _label_table(self, given: Path | None) -> dict[str, str]:
        """{relative path: label} from the labels CSV, if there is one."""
        text = None
        where = given
        if given is not None:
            text = given.read_text(encoding="utf-8-sig")
        elif self._zip is not None and LABELS_NAME in self._zip.namelist():
            text = self._zip.read(LABELS_NAME).decode("utf-8-sig")
            where = self.path
        else:
            for candidate in (self.path / LABELS_NAME, self.path.with_suffix(".csv")):
                if candidate.is_file() and candidate != self.path:
                    text, where = candidate.read_text(encoding="utf-8-sig"), candidate
                    break
        if text is None:
            return {}
        rows = list(csv.DictReader(io.StringIO(text)))
        if rows and not {"file", "label"} <= set(rows[0]):
            raise DataError(where or self.path, "a labels CSV needs the columns file,label")
        return {r["file"]: r["label"] for r in rows if r.get("file") and r.get("label")}

    def _read(self, name: str) -> bytes:
        """The bytes of one picture file; OSError or ValueError if it cannot be read."""
        if self._zip is not None:
            if self._zip.getinfo(name).file_size > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES:,} bytes")
            return self._zip.read(name)
        file = self.path / name
        if file.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(f"larger than {MAX_FILE_BYTES:,} bytes")
        return file.read_bytes()

    def chunks(self, rows: int) -> Iterator[Chunk]:
        for start in range(0, self.total, rows):
            names = self.names[start:start + rows]
            images: list[np.ndarray] = []
            good: list[int] = []
            errors: list[RowError] = []
            for row, name in enumerate(names, start):
                try:
                    data = self._read(name)
                    images.append(picture_images(self.sig, [(data, None)], [(name,)],
                                                 DEFAULT_MAX_PIXELS)[0])
                    good.append(row)
                except InvalidRequest as exc:
                    errors.append(RowError(row, None, exc.message))
                except (OSError, ValueError, zipfile.BadZipFile) as exc:
                    errors.append(RowError(row, None, f"{name}: cannot read: {exc}"))
            idx = np.asarray(good, np.int64)
            values = np.stack(images) if images else \
                np.empty((0, *self.sig.input_shape), np.float32)
            yield Chunk(rows=idx, lines=None, values=values.reshape(len(idx),
                                                                   *self.sig.input_shape),
                        targets=self.targets[idx], errors=errors, consumed=len(names))

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _is_picture(name: str) -> bool:
    """A picture file's name: a known suffix, not hidden, not macOS zip metadata."""
    path = PurePosixPath(name)
    return (path.suffix.lower() in SUFFIXES and not path.name.startswith(".")
            and "__MACOSX" not in path.parts)
