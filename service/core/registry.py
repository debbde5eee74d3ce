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
from model.artifact import MANIFEST_FILE, NAME_PATTERN, WEIGHTS_FILE, parse_version
from model.interface import ModelInterface

from .errors import ModelNotFound, NotReady, VersionNotFound

log = logging.getLogger("service.registry")

#: (mtime_ns, size) of the manifest and the weights; a change means "load again".
Stamp = tuple[tuple[int, int] | None, tuple[int, int] | None]


@dataclass(frozen=True)
class ModelVersion:
    """One version folder: its predictor and interface when it loaded, else the reason."""

    name: str
    version: int
    path: Path
    stamp: Stamp
    predictor: Predictor | None = None
    interface: ModelInterface | None = None
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.predictor is not None


@dataclass(frozen=True)
class ServedModel:
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
    """{model name: {version: folder}} under root; skips temp folders and non-versions."""
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
                # Trainers write into ".tmp-*" and rename into place: only versions count.
                number = parse_version(v.name)
                if number is not None and v.is_dir():
                    versions[number] = Path(v.path)
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
        self._models: Mapping[str, ServedModel] = MappingProxyType({})
        self._found: tuple[str, ...] = ()
        self._next_scan = 0.0
        self.loaded = False

    # -- reading ---------------------------------------------------------------------
    @property
    def models(self) -> Mapping[str, ServedModel]:
        """The current snapshot: name -> Model, sorted by name."""
        return self._models

    def get_model(self, name: str) -> ServedModel:
        model = self._models.get(name)
        if model is None:
            raise _model_not_found(name, self._found)
        return model

    def get(self, name: str, version: str | int | None = None) -> ModelVersion:
        """The named version, or the latest ready one; NotFound/NotReady otherwise."""
        model = self.get_model(name)
        if version is None:
            mv = model.latest
            if mv is None:
                raise _model_not_ready(model)
            return mv
        number = version if isinstance(version, int) else parse_version(version)
        mv = model.versions.get(number) if number is not None else None
        if mv is None:
            raise _no_such_version(name, version, model.versions)
        if not mv.ready:
            raise _version_not_ready(mv)
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
        new: dict[str, ServedModel] = {}
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
            new[name] = ServedModel(name, MappingProxyType(versions))
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
        mv = load_version(name, number, path, stamp)
        if mv.error is not None:
            # A broken artifact is reported, never fatal: the other versions keep serving.
            log.warning("artifact failed to load", extra={"fields": {
                "model": name, "version": number, "reason": mv.error}})
        return mv


def load_version(name: str, number: int, path: Path, stamp: Stamp | None = None,
                 ) -> ModelVersion:
    """Load one version folder; a failure is recorded in ``error``, never raised."""
    if stamp is None:
        stamp = (_stat(path / MANIFEST_FILE), _stat(path / WEIGHTS_FILE))
    try:
        predictor = Predictor.from_artifact(path)
        return ModelVersion(name, number, path, stamp, predictor, predictor.interface)
    except (ModelError, OSError, ValueError, KeyError, TypeError) as exc:
        return ModelVersion(name, number, path, stamp, error=str(exc) or type(exc).__name__)


def load_one(root: Path, name: str, version: str | None = None,
             ) -> tuple[ModelVersion, list[ModelVersion]]:
    """Load only the version one caller needs (the batch scorer): the named one, or the
    highest that loads. Returns it and the newer versions that failed; raises as
    ``Registry.get`` does, with the same messages."""
    found = _version_dirs(root)
    if name not in found:
        raise _model_not_found(name, tuple(sorted(found)))
    dirs = found[name]
    if version is not None:
        number = parse_version(version)
        if number not in dirs:
            raise _no_such_version(name, version, dirs)
        mv = load_version(name, number, dirs[number])
        if not mv.ready:
            raise _version_not_ready(mv)
        return mv, []
    failed: list[ModelVersion] = []
    for number in sorted(dirs, reverse=True):
        mv = load_version(name, number, dirs[number])
        if mv.ready:
            return mv, failed
        failed.append(mv)
    raise _model_not_ready(ServedModel(name, {mv.version: mv for mv in reversed(failed)}))


# -- the lookup errors, worded once ------------------------------------------------------------
def _model_not_found(name: str, found: Collection[str]) -> ModelNotFound:
    known = ", ".join(found) or "none (the artifacts folder is empty)"
    return ModelNotFound(f"model {name!r} not found; models: {known}", {"model": name})


def _model_not_ready(model: ServedModel) -> NotReady:
    return NotReady(f"model {model.name!r} is not ready: {model.reason}",
                    {"model": model.name, "reason": model.reason})


def _no_such_version(name: str, version: str | int, versions: Collection[int],
                     ) -> VersionNotFound:
    return VersionNotFound(f"model {name!r} has no version {version!r}; versions: "
                           f"{', '.join(map(str, versions)) or 'none'}",
                           {"model": name, "version": str(version)})


def _version_not_ready(mv: ModelVersion) -> NotReady:
    return NotReady(f"model {mv.name!r} version {mv.version} is not ready: {mv.error}",
                    {"model": mv.name, "version": str(mv.version), "reason": mv.error})
