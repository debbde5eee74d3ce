"""Model registry: finds ``<root>/<name>/<version>/``, loads and verifies every version, and
picks up new, changed and removed versions while serving.

Readers get an immutable snapshot; a refresh builds a new one and swaps it in with a single
assignment, so a request never sees a half-updated registry and nothing is dropped during a
rollout. A version whose artifact fails to load stays listed with the reason and is not
ready; the others keep serving. The default ("latest") version of a model is its highest
version that loaded; a newer broken version is reported but does not take the model down.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from model import ModelError, Predictor
from model.artifact import MANIFEST_FILE, NAME_PATTERN, WEIGHTS_FILE

from .errors import ModelNotFound, NotReady, VersionNotFound
from .signature import Signature, signature_of

log = logging.getLogger("service.registry")

#: (mtime_ns, size) of the manifest and the weights; a change means "load again".
Stamp = tuple[tuple[int, int] | None, tuple[int, int] | None]


@dataclass(frozen=True)
class ModelVersion:
    """One version folder: its predictor and signature when it loaded, else the reason."""

    name: str
    version: int
    path: Path
    stamp: Stamp
    predictor: Predictor | None = None
    signature: Signature | None = None
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.predictor is not None


@dataclass(frozen=True)
class Model:
    """A model name and all its versions, ascending."""

    name: str
    versions: Mapping[int, ModelVersion]

    @property
    def latest(self) -> ModelVersion | None:
        """The version served when none is named: the highest one that loaded."""
        for v in sorted(self.versions, reverse=True):
            if self.versions[v].ready:
                return self.versions[v]
        return None

    @property
    def ready(self) -> bool:
        return self.latest is not None

    @property
    def reason(self) -> str | None:
        """Why the model is not ready, or None."""
        if self.ready:
            return None
        if not self.versions:
            return "no versions found"
        newest = self.versions[max(self.versions)]
        return f"no version loaded; version {newest.version}: {newest.error}"


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _version_dirs(root: Path) -> dict[str, dict[int, Path]]:
    """{model name: {version: folder}} under root; skips temp folders and non-integers."""
    found: dict[str, dict[int, Path]] = {}
    try:
        model_entries = list(os.scandir(root))
    except OSError:
        return found
    for m in model_entries:
        if not (m.is_dir() and NAME_PATTERN.match(m.name)):
            continue
        versions: dict[int, Path] = {}
        try:
            for v in os.scandir(m.path):
                # Trainers write into ".tmp-*" and rename into place: only digits count.
                if v.is_dir() and v.name.isdigit() and not v.name.startswith("0"):
                    versions[int(v.name)] = Path(v.path)
        except OSError:
            continue
        found[m.name] = versions
    return found


class Registry:
    """All models under ``root``; ``refresh()`` rescans, ``maybe_refresh()`` rate-limits it.

    ``names`` limits loading to those models (the batch scorer needs one); the others are
    still listed when a model is not found.
    """

    def __init__(self, root: str | os.PathLike, reload_interval: float = 0.0,
                 clock: Callable[[], float] = time.monotonic,
                 names: Collection[str] | None = None) -> None:
        self.root = Path(root)
        self.reload_interval = float(reload_interval)
        self.names = frozenset(names) if names is not None else None
        self._clock = clock
        self._lock = threading.Lock()
        self._models: Mapping[str, Model] = MappingProxyType({})
        self._found: tuple[str, ...] = ()
        self._next_scan = 0.0
        self.loaded = False

    # -- reading ---------------------------------------------------------------------
    @property
    def models(self) -> Mapping[str, Model]:
        """The current snapshot: name -> Model, sorted by name."""
        return self._models

    def get_model(self, name: str) -> Model:
        model = self._models.get(name)
        if model is None:
            known = ", ".join(self._found) or "none (the artifacts folder is empty)"
            raise ModelNotFound(f"model {name!r} not found; models: {known}",
                                {"model": name})
        return model

    def get(self, name: str, version: str | int | None = None) -> ModelVersion:
        """The named version, or the latest ready one; NotFound/NotReady otherwise."""
        model = self.get_model(name)
        if version is None:
            mv = model.latest
            if mv is None:
                raise NotReady(f"model {name!r} is not ready: {model.reason}",
                               {"model": name, "reason": model.reason})
            return mv
        number = _parse_version(version)
        mv = model.versions.get(number) if number is not None else None
        if mv is None:
            raise VersionNotFound(
                f"model {name!r} has no version {version!r}; versions: "
                f"{', '.join(map(str, model.versions)) or 'none'}",
                {"model": name, "version": str(version)})
        if not mv.ready:
            raise NotReady(f"model {name!r} version {number} is not ready: {mv.error}",
                           {"model": name, "version": str(number), "reason": mv.error})
        return mv

    # -- loading ---------------------------------------------------------------------
    def maybe_refresh(self) -> None:
        """Rescan if ``reload_interval`` seconds have passed since the last scan (cheap)."""
        if self.reload_interval > 0 and self._clock() >= self._next_scan:
            self.refresh()

    def refresh(self) -> bool:
        """Rescan the folder: load new or changed versions, drop removed ones.

        Returns True if the snapshot changed. Concurrent callers skip rather than wait.
        """
        if not self._lock.acquire(blocking=not self.loaded):
            return False
        try:
            changed = self._rescan()
            self.loaded = True
            self._next_scan = self._clock() + self.reload_interval
            return changed
        finally:
            self._lock.release()

    def _rescan(self) -> bool:
        old = self._models
        if not self.root.is_dir() and not self.loaded:
            log.warning("artifacts folder does not exist", extra={"fields": {
                "artifacts_dir": str(self.root)}})
        new: dict[str, Model] = {}
        changed = False
        found = _version_dirs(self.root)
        self._found = tuple(sorted(found))
        for name, dirs in sorted(found.items()):
            if self.names is not None and name not in self.names:
                continue
            previous = old.get(name)
            versions: dict[int, ModelVersion] = {}
            for number, path in sorted(dirs.items()):
                stamp: Stamp = (_stat(path / MANIFEST_FILE), _stat(path / WEIGHTS_FILE))
                prev = previous.versions.get(number) if previous else None
                if prev is not None and prev.stamp == stamp and prev.path == path:
                    versions[number] = prev
                    continue
                versions[number] = self._load(name, number, path, stamp)
                changed = True
            if previous is None or set(previous.versions) != set(versions):
                changed = True
            new[name] = Model(name, MappingProxyType(versions))
        if set(old) != set(new):
            changed = True
        if changed:
            self._models = MappingProxyType(new)
            for name, model in new.items():
                latest = model.latest
                log.info("model registry updated", extra={"fields": {
                    "model": name, "serving_version": latest.version if latest else None,
                    "versions": {str(v): ("ready" if mv.ready else mv.error)
                                 for v, mv in model.versions.items()}}})
        return changed

    def _load(self, name: str, number: int, path: Path, stamp: Stamp) -> ModelVersion:
        try:
            predictor = Predictor.from_artifact(path)
            return ModelVersion(name, number, path, stamp, predictor, signature_of(predictor))
        except (ModelError, OSError, ValueError, KeyError, TypeError) as exc:
            # A broken artifact is reported, never fatal: the other versions keep serving.
            reason = str(exc) or type(exc).__name__
            log.warning("artifact failed to load", extra={"fields": {
                "model": name, "version": number, "reason": reason}})
            return ModelVersion(name, number, path, stamp, error=reason)


def _parse_version(version: str | int) -> int | None:
    if isinstance(version, int):
        return version
    if version.isdigit() and not version.startswith("0") and len(version) < 10:
        return int(version)
    return None
