"""Input files of the batch scorer - CSV, JSON Lines, IDX, Parquet, a folder or zip of
pictures - read in chunks of records.

A reader checks what it can before anything is scored (CSV header, IDX header and size,
labels file) and raises DataError for a file it cannot use. A record it cannot read becomes
a RowError and reading goes on. Records are numbered from 0 in file order; blank lines are
not records. Text formats also give each record's 1-based line number. CSV and JSON Lines
may be gzip-compressed (recognised by the magic bytes). Memory holds one chunk at a time.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from model.errors import DataError
from model.idx import DTYPES, GZIP_MAGIC
from model.interface import ModelInterface

from .csv_reader import CsvSource
from .idx_reader import IdxSource
from .image_reader import ImageSource, is_picture_collection
from .jsonl_reader import JsonlSource
from .parquet_reader import ParquetSource
from .source import GZIP_ERRORS, Chunk, RowError, Source

__all__ = ["FORMATS", "Chunk", "CsvSource", "IdxSource", "ImageSource", "JsonlSource",
           "ParquetSource", "RowError", "Source", "detect_format", "open_source",
           "sibling_labels"]

FORMATS = ("csv", "jsonl", "idx", "parquet", "images")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
             ".pq": "parquet"}
PARQUET_MAGIC = b"PAR1"


def detect_format(path: Path) -> str:
    """csv, jsonl, idx, parquet or images from the name (.csv, .jsonl/.ndjson, optionally
    .gz; .parquet; IDX names like ``t10k-images-idx3-ubyte``; a folder or .zip of pictures)
    or else from the first bytes (IDX or Parquet magic number)."""
    if is_picture_collection(path):
        return "images"
    name = path.name.lower().removesuffix(".gz")
    suffix = Path(name).suffix
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    if re.search(r"idx\d", name) or suffix == ".idx":
        return "idx"
    head = _peek(path)
    if len(head) >= 4 and head[:2] == b"\0\0" and head[2] in DTYPES:
        return "idx"
    if head == PARQUET_MAGIC:
        return "parquet"
    raise DataError(path, "cannot tell the format from the name: expected .csv, .jsonl, "
                          ".ndjson or .parquet, or an IDX file (e.g. "
                          "t10k-images-idx3-ubyte.gz); or name it with --format")


def _peek(path: Path) -> bytes:
    """The first bytes of the file's content (decompressed if it is gzip)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if head[:2] == GZIP_MAGIC:
                f.seek(0)
                with gzip.GzipFile(fileobj=f) as z:
                    head = z.read(4)
    except GZIP_ERRORS:
        return b""
    return head


def open_source(path: Path, fmt: str, sig: ModelInterface, labels: Path | None = None) -> Source:
    """Open ``path`` as ``fmt`` for a model of interface ``sig``; DataError if unusable."""
    if fmt not in ("idx", "images") and labels is not None:
        raise DataError(labels, "--labels is for IDX and picture input; CSV, JSON Lines and "
                                "Parquet records carry their own labels")
    if fmt == "csv":
        return CsvSource(path, sig)
    if fmt == "jsonl":
        return JsonlSource(path, sig)
    if fmt == "parquet":
        return ParquetSource(path, sig)
    if fmt == "images":
        return ImageSource(path, sig, labels)
    return IdxSource(path, sig, labels if labels is not None else sibling_labels(path))


def sibling_labels(path: Path) -> Path | None:
    """``...-labels-idx1-ubyte[.gz]`` beside an ``...-images-idx3-ubyte[.gz]`` file."""
    name = path.name
    if "images-idx3-ubyte" not in name:
        return None
    base = name.replace("images-idx3-ubyte", "labels-idx1-ubyte").removesuffix(".gz")
    for candidate in (path.with_name(base + ".gz"), path.with_name(base)):
        if candidate.is_file():
            return candidate
    return None

