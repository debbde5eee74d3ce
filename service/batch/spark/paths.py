"""Datasets written beside their final path and renamed into place, through Hadoop's file
system API (``file:``, ``hdfs:``, ``s3a:``... whatever the cluster is configured for), so a
failed job leaves nothing half-written at the output path."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def sibling(path: str, suffix: str) -> str:
    """``path`` with ``suffix`` appended to its last part: ``out.parquet.errors.jsonl``."""
    return path.rstrip("/") + suffix


def temporary(path: str) -> str:
    """A hidden name beside ``path`` (Spark and Hadoop skip names starting with a dot)."""
    head, slash, name = path.rstrip("/").rpartition("/")
    return f"{head}{slash}.{name}.{secrets.token_hex(4)}.tmp"


class HadoopFiles:
    """The few file-system calls a job makes, on the driver, through Spark's JVM."""

    def __init__(self, spark: SparkSession) -> None:
        sc = spark.sparkContext
        self._jvm: Any = sc._jvm  # type: ignore[attr-defined]
        self._conf = sc._jsc.hadoopConfiguration()  # type: ignore[attr-defined]

    def _path(self, path: str) -> tuple[Any, Any]:
        p = self._jvm.org.apache.hadoop.fs.Path(path)
        return p, p.getFileSystem(self._conf)

    def exists(self, path: str) -> bool:
        p, fs = self._path(path)
        return bool(fs.exists(p))

    def is_file(self, path: str) -> bool:
        """Whether ``path`` is one file (not a folder, not a glob)."""
        p, fs = self._path(path)
        try:
            return bool(fs.getFileStatus(p).isFile())
        except Exception:  # a glob, or not there: Spark's reader says what is wrong
            return False

    def mkdirs(self, path: str) -> None:
        p, fs = self._path(path)
        fs.mkdirs(p)

    def delete(self, path: str) -> None:
        p, fs = self._path(path)
        fs.delete(p, True)

    def rename(self, source: str, target: str) -> None:
        """Move ``source`` onto ``target``, replacing what was there."""
        self.delete(target)
        src, fs = self._path(source)
        dst, _ = self._path(target)
        if not fs.rename(src, dst):
            raise OSError(f"cannot rename {source} to {target}")


class Staging:
    """Datasets written under temporary names, all put in place by ``commit()`` or all
    removed by ``discard()``."""

    def __init__(self, files: HadoopFiles) -> None:
        self.files = files
        self.staged: list[tuple[str, str]] = []

    def write(self, path: str, write: Callable[[str], None]) -> None:
        """``write(temporary name)`` of the dataset that belongs at ``path``."""
        temp = temporary(path)
        self.staged.append((temp, path))
        write(temp)

    def folder(self, path: str) -> str:
        """A new empty folder that belongs at ``path``, for writers that are not Spark's."""
        temp = temporary(path)
        self.staged.append((temp, path))
        self.files.mkdirs(temp)
        return temp

    def drop(self, path: str) -> None:
        """Remove what was staged for ``path``: it will not be put in place."""
        for temp, target in [s for s in self.staged if s[1] == path]:
            self.files.delete(temp)
            self.staged.remove((temp, target))

    def commit(self) -> None:
        for temp, path in self.staged:
            self.files.rename(temp, path)
        self.staged = []

    def discard(self) -> None:
        for temp, _ in self.staged:
            self.files.delete(temp)
        self.staged = []


def finish_folder(folder: str) -> None:
    """Mark a local dataset folder complete as Spark's writers do (an empty ``_SUCCESS``),
    after removing what failed task attempts left (hidden temporary files)."""
    for entry in os.scandir(folder):
        if entry.name.startswith("."):
            os.unlink(entry.path)
    open(os.path.join(folder, "_SUCCESS"), "wb").close()
