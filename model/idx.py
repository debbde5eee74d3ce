"""IDX files (the MNIST format), raw or gzip: read whole, or streamed in chunks of records;
written (uint8) by ``idx_bytes``.

Format: http://yann.lecun.com/exdb/mnist/ ("FILE FORMATS"): two zero bytes, a type code, the
number of dimensions, each dimension as a big-endian uint32, then the data, big-endian. Gzip
is recognised by its magic bytes, not by the file name. Every reader checks the header and
that the data is exactly as long as the header says, and raises DataError naming the file
and the problem.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from .errors import DataError

PathLike = str | os.PathLike[str]

GZIP_MAGIC = b"\x1f\x8b"

#: type code -> big-endian dtype as stored
DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
DTYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32",
               0x0E: "float64"}

#: The longest header: 4 bytes and four dimensions.
MAX_HEADER = 4 + 4 * 4

_GZIP_ERRORS = (OSError, EOFError, zlib.error)


@dataclass(frozen=True)
class IdxHeader:
    """What an IDX header says: the stored (big-endian) dtype, the shape, its own length."""

    code: int
    shape: tuple[int, ...]
    size: int

    @property
    def dtype(self) -> np.dtype:
        return DTYPES[self.code]

    @property
    def data_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def check_data_size(self, found: int, path: PathLike) -> None:
        """DataError unless ``found`` bytes of data are exactly what the header says."""
        expected = self.data_bytes
        if found != expected:
            dims = "x".join(str(d) for d in self.shape)
            what = "truncated" if found < expected else f"{found - expected} trailing bytes"
            raise DataError(path, f"{what}: header says {dims} = {expected} bytes of "
                                  f"{DTYPE_NAMES[self.code]} data, file has {found}")


def parse_header(data: bytes, path: PathLike) -> IdxHeader:
    """The header at the start of ``data`` (the file's first MAX_HEADER bytes, or all of a
    shorter file), checked: magic number, type code, dimensions, completeness."""
    if len(data) == 0:
        raise DataError(path, "empty file: expected an IDX file")
    if len(data) < 4:
        raise DataError(path, f"truncated: an IDX header needs at least 4 bytes, file has "
                              f"{len(data)}", "header")
    zero1, zero2, code, ndim = data[:4]
    if zero1 != 0 or zero2 != 0:
        raise DataError(path, f"not an IDX file: magic number starts 0x{zero1:02x} "
                              f"0x{zero2:02x}, expected 0x00 0x00", "header")
    if code not in DTYPES:
        known = ", ".join(f"0x{c:02x} {n}" for c, n in DTYPE_NAMES.items())
        raise DataError(path, f"unknown data type code 0x{code:02x} (known: {known})", "header")
    if not 1 <= ndim <= 4:
        raise DataError(path, f"unsupported number of dimensions {ndim} (expected 1 to 4)",
                        "header")
    size = 4 + 4 * ndim
    if len(data) < size:
        raise DataError(path, f"truncated: a {ndim}-D IDX header is {size} bytes, file has "
                              f"{len(data)}", "header")
    return IdxHeader(code, struct.unpack(f">{ndim}I", data[4:size]), size)


def decompress(raw: bytes, path: PathLike) -> bytes:
    """Gunzip ``raw`` if it starts with the gzip magic bytes (whatever the file is called)."""
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except _GZIP_ERRORS as e:
        raise DataError(path, f"corrupt gzip stream: {e}") from e


def parse_idx(data: bytes, path: PathLike) -> np.ndarray:
    """Check an uncompressed IDX byte string and return its array in native byte order."""
    header = parse_header(data[:MAX_HEADER], path)
    header.check_data_size(len(data) - header.size, path)
    array = np.frombuffer(data, dtype=header.dtype, offset=header.size).reshape(header.shape)
    # a native-order, writable copy (frombuffer over bytes is read-only); uint8 stays uint8
    return array.astype(header.dtype.newbyteorder("="), copy=True)


def read_bytes(path: PathLike) -> bytes:
    """The file's bytes; an unreadable file is a DataError, not a traceback."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise DataError(path, f"cannot read: {e.strerror or e}") from e


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file, raw or gzip (recognised by its magic bytes, not its name).

    Returns the array with the header's shape (1 to 4 dimensions) and dtype converted to native
    byte order: uint8, int8, int16, int32, float32 or float64. Raises DataError for a missing
    or unreadable file, a corrupt gzip stream, a bad magic number or type code, an incomplete
    header, or data whose size is not exactly the product of the dimensions.
    """
    return parse_idx(decompress(read_bytes(path), path), path)


def idx_bytes(array: np.ndarray, *, compress: bool = True) -> bytes:
    """``array`` (uint8, 1 to 4 dimensions) as the bytes of an IDX file, gzipped by default.

    The gzip header carries no time stamp, so the same array always gives the same bytes
    (generated data sets can be committed and regenerated byte for byte).
    """
    if array.dtype != np.uint8 or not 1 <= array.ndim <= 4:
        raise ValueError(f"expected a uint8 array of 1 to 4 dimensions, got {array.ndim}-D "
                         f"{array.dtype}")
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array).tobytes()
    return gzip.compress(data, mtime=0) if compress else data


class IdxReader:
    """An IDX file opened for reading its records (first-axis items) in chunks.

    Memory stays at one chunk whatever the file's size. The header is checked on opening;
    the data size too for a raw file, while for a gzip file a wrong size is found (and
    raised) when the stream ends. Use as a context manager::

        with IdxReader(path) as idx:
            for records in idx.chunks(1000):   # (k, *idx.record_shape), native byte order
                ...
    """

    def __init__(self, path: PathLike) -> None:
        self.path = path
        try:
            raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as e:
            raise DataError(path, f"cannot read: {e.strerror or e}") from e
        self._raw = raw
        self._file: IO[bytes] = raw
        try:
            self.compressed = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            if self.compressed:
                self._file = gzip.GzipFile(fileobj=raw, mode="rb")
            head = self._read(MAX_HEADER)
            self.header = parse_header(head, path)
            self._pending = head[self.header.size:]
            self._consumed = 0  # data bytes handed out so far
            if not self.compressed:
                self.header.check_data_size(os.fstat(raw.fileno()).st_size - self.header.size,
                                            path)
        except BaseException:
            self.close()
            raise

    @property
    def shape(self) -> tuple[int, ...]:
        return self.header.shape

    @property
    def records(self) -> int:
        """How many records (items along the first axis) the header announces."""
        return self.header.shape[0]

    @property
    def record_shape(self) -> tuple[int, ...]:
        return self.header.shape[1:]

    def _read(self, n: int) -> bytes:
        """Up to n bytes (fewer only at the end of the stream)."""
        parts: list[bytes] = []
        try:
            while n > 0:
                part = self._file.read(n)
                if not part:
                    break
                parts.append(part)
                n -= len(part)
        except _GZIP_ERRORS as e:
            problem = "corrupt gzip stream" if self.compressed else "cannot read"
            raise DataError(self.path, f"{problem}: {e}") from e
        return b"".join(parts)

    def chunks(self, rows: int) -> Iterator[np.ndarray]:
        """The records in order, ``rows`` at a time (the last chunk may be shorter), as
        native-byte-order arrays of shape (k, *record_shape). After the last record, the
        file must end: trailing or missing bytes raise DataError."""
        if rows < 1:
            raise ValueError(f"rows must be at least 1, got {rows}")
        header = self.header
        record_bytes = header.data_bytes // max(1, self.records)
        native = header.dtype.newbyteorder("=")
        remaining = self.records
        while remaining > 0:
            k = min(rows, remaining)
            want = k * record_bytes
            data = self._pending[:want]
            self._pending = self._pending[want:]
            if len(data) < want:
                data += self._read(want - len(data))
            self._consumed += len(data)
            if len(data) < want:
                header.check_data_size(self._consumed, self.path)
            yield np.frombuffer(data, dtype=header.dtype).reshape(k, *self.record_shape) \
                .astype(native)
            remaining -= k
        extra = len(self._pending)
        self._pending = b""
        while part := self._read(1 << 16):
            extra += len(part)
        header.check_data_size(self._consumed + extra, self.path)

    def close(self) -> None:
        if self._file is not self._raw:
            self._file.close()
        self._raw.close()

    def __enter__(self) -> IdxReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"IdxReader({os.fspath(self.path)!r}, shape={self.shape})"
