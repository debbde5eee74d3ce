"""Artifact folders ``<root>/<name>/<version>/``: ``weights.npz`` + ``manifest.json``.

- ``weights.npz`` holds float32 parameter arrays only, named ``"<layer>.<param>"``, readable
  with ``numpy.load(..., allow_pickle=False)``; written byte-for-byte reproducibly.
- ``manifest.json`` holds everything else (see ``validate_manifest``), including the sha256
  of ``weights.npz``, which the loader checks before it parses the weights.
- A version is written into a temporary folder beside its final place and renamed into
  place, so a crash never leaves half a model and readers never see one.
Loading never executes code from the artifact: JSON, plain arrays, and a fixed table of
layer types.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shutil
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, ConfigError
from .network import Sequential

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "weights.npz"
TASKS = ("regression", "classification")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so the same weights give the same bytes and sha256


@dataclass(frozen=True)
class Artifact:
    """A loaded, verified artifact: where it came from, its manifest, its built network."""

    path: Path
    manifest: dict[str, Any]
    network: Sequential

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> int:
        return self.manifest["version"]


# -- manifest validation -------------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def validate_manifest(manifest: Any) -> None:
    """Raise ArtifactError listing every problem if the manifest breaks the format."""
    if not isinstance(manifest, dict):
        raise ArtifactError("manifest must be a JSON object")
    problems: list[str] = []

    def need(key: str, check: Any, expected: str) -> Any:
        if key not in manifest:
            problems.append(f"missing field {key!r}")
            return None
        if not check(manifest[key]):
            problems.append(f"field {key!r} must be {expected}, got {manifest[key]!r:.80}")
            return None
        return manifest[key]

    need("format_version", lambda v: v == FORMAT_VERSION, f"{FORMAT_VERSION}")
    need("name", lambda v: isinstance(v, str) and NAME_PATTERN.match(v),
         "a name of letters, digits, '_', '.', '-'")
    need("version", lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    task = need("task", lambda v: v in TASKS, f"one of {TASKS}")
    need("created_at", lambda v: isinstance(v, str) and v, "a timestamp string")
    layers = need("layers", lambda v: isinstance(v, list) and v, "a non-empty list of layers")
    if layers:
        for i, layer in enumerate(layers):
            if not (isinstance(layer, dict) and isinstance(layer.get("type"), str)):
                problems.append(f"layers[{i}] must be an object with a 'type' string")
    inp = need("input", lambda v: isinstance(v, dict), "an object")
    if inp is not None:
        shape = inp.get("shape")
        if not (isinstance(shape, list) and shape and all(_is_int(d) and d > 0 for d in shape)):
            problems.append("input.shape must be a non-empty list of positive integers")
        features = inp.get("features")
        if features is not None and not (
                isinstance(features, list) and all(isinstance(f, str) for f in features)
                and len(set(features)) == len(features)
                and isinstance(shape, list) and len(shape) == 1 and len(features) == shape[0]):
            problems.append("input.features must be unique names, one per input column")
        if "name" in inp and not (isinstance(inp["name"], str) and inp["name"]):
            problems.append("input.name must be a non-empty string (the input tensor's name)")
        rng = inp.get("range")
        if rng is not None and not (isinstance(rng, list) and len(rng) == 2
                                    and all(_is_number(v) for v in rng) and rng[0] < rng[1]):
            problems.append("input.range must be [low, high] with low < high")
    out = need("output", lambda v: isinstance(v, dict), "an object")
    if out is not None and "name" in out and not (isinstance(out["name"], str) and out["name"]):
        problems.append("output.name must be a non-empty string (the output tensor's name)")
    if out is not None and task == "classification":
        labels = out.get("labels")
        if not (isinstance(labels, list) and len(labels) >= 2
                and all(isinstance(label, str) for label in labels)):
            problems.append("output.labels must list at least two class names")
    pre = need("preprocessing", lambda v: isinstance(v, dict), "an object")
    if pre is not None:
        if not isinstance(pre.get("input", []), list):
            problems.append("preprocessing.input must be a list of steps")
        if pre.get("target") is not None and not isinstance(pre["target"], dict):
            problems.append("preprocessing.target must be an object or null")
    need("metrics", lambda v: isinstance(v, dict), "an object")
    need("training", lambda v: isinstance(v, dict), "an object")
    need("weights_sha256", lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v),
         "64 lowercase hex digits")
    if problems:
        raise ArtifactError("invalid manifest: " + "; ".join(problems))


# -- weights -------------------------------------------------------------------------------
def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_bytes(weights: Mapping[str, np.ndarray]) -> bytes:
    """An .npz archive of float32 arrays, byte-reproducible (sorted names, fixed dates)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(weights):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            arr = np.ascontiguousarray(weights[key], dtype=np.float32)
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=False)
    return buf.getvalue()


def read_weights(path: Path) -> dict[str, np.ndarray]:
    """Read weights.npz without pickle; every array must be float32."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ArtifactError(f"{path}: cannot read weights: {exc}") from None
    for key, arr in arrays.items():
        if arr.dtype != np.float32:
            raise ArtifactError(f"{path}: weight {key!r} is {arr.dtype}, expected float32")
    return arrays


# -- load ----------------------------------------------------------------------------------
def load_artifact(path: str | os.PathLike) -> Artifact:
    """Load and verify ``path`` (a version folder); raise ArtifactError naming the problem."""
    path = Path(path)
    manifest_path, weights_path = path / MANIFEST_FILE, path / WEIGHTS_FILE
    if not path.is_dir():
        raise ArtifactError(f"{path}: not an artifact folder (it does not exist)")
    for p in (manifest_path, weights_path):
        if not p.is_file():
            raise ArtifactError(f"{path}: missing {p.name}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{manifest_path}: not valid JSON: {exc}") from None
    try:
        validate_manifest(manifest)
    except ArtifactError as exc:
        raise ArtifactError(f"{manifest_path}: {exc}") from None
    if parse_version(path.name) is not None and (path.name != str(manifest["version"])
                                or path.parent.name != manifest["name"]):
        raise ArtifactError(f"{path}: manifest says {manifest['name']}/{manifest['version']}, "
                            f"the folder is {path.parent.name}/{path.name}")
    actual = sha256_file(weights_path)
    if actual != manifest["weights_sha256"]:
        raise ArtifactError(f"{weights_path}: checksum mismatch (sha256 {actual}, manifest "
                            f"says {manifest['weights_sha256']}): the weights were changed or "
                            "damaged after training")
    weights = read_weights(weights_path)
    try:
        network = Sequential.from_config(
            {"input_shape": manifest["input"]["shape"], "layers": manifest["layers"]}).build()
        network.set_weights(weights)
    except ConfigError as exc:
        raise ArtifactError(f"{path}: {exc}") from None
    _check_output(manifest, network, path)
    return Artifact(path=path, manifest=manifest, network=network)


def _check_output(manifest: dict[str, Any], network: Sequential, path: Path) -> None:
    if manifest["task"] == "classification":
        expected: tuple[int, ...] = (len(manifest["output"]["labels"]),)
    else:
        expected = (1,)
    if network.output_shape != expected:
        raise ArtifactError(f"{path}: the network outputs shape {network.output_shape}, a "
                            f"{manifest['task']} model with this manifest needs {expected}")


# -- versions ------------------------------------------------------------------------------
def parse_version(text: str) -> int | None:
    """The version a folder name (or a requested version) stands for, or None.

    The one rule of what a version is: a positive integer written without leading zeros
    (so ".tmp-*" folders of a training in progress, "01" or "latest" are never versions).
    """
    if text.isdigit() and not text.startswith("0") and len(text) < 10:
        return int(text)
    return None


def list_versions(model_dir: str | os.PathLike) -> list[int]:
    """Version numbers present under ``model_dir`` (folders named by a version), sorted."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(v for p in model_dir.iterdir()
                  if p.is_dir() and (v := parse_version(p.name)) is not None)


# -- save ----------------------------------------------------------------------------------


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a synced temporary file beside it and one rename,
    so readers see the old file or the whole new one, and a failure leaves neither part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        _write_synced(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def save_artifact(root: str | os.PathLike, name: str, network: Sequential,
                  manifest: Mapping[str, Any],
                  extra_files: Mapping[str, bytes] | None = None) -> Path:
    """Write ``network`` as the next version of ``root/name`` and return its folder.

    ``manifest`` supplies task, input, output, preprocessing, metrics and training; name,
    version, layers, created_at (if absent), format_version and weights_sha256 are filled in
    here. ``extra_files`` (e.g. ``{"curves.png": ...}``) land in the same atomic rename.
    """
    model_dir = Path(root) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    data = weights_bytes(network.get_weights())
    full = {
        "format_version": FORMAT_VERSION, "name": name, "version": 0,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **{k: v for k, v in manifest.items() if k not in ("name", "version")},
        "layers": network.get_config()["layers"],
        "weights_sha256": hashlib.sha256(data).hexdigest(),
    }
    full["input"] = {**full.get("input", {}), "shape": list(network.input_shape)}
    tmp = model_dir / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        _write_synced(tmp / WEIGHTS_FILE, data)
        for fname, content in (extra_files or {}).items():
            if "/" in fname or fname in (WEIGHTS_FILE, MANIFEST_FILE):
                raise ValueError(f"bad extra file name {fname!r}")
            _write_synced(tmp / fname, content)
        version = (list_versions(model_dir) or [0])[-1] + 1
        while True:
            full["version"] = version
            validate_manifest(full)
            _write_synced(tmp / MANIFEST_FILE,
                          (json.dumps(full, indent=2, allow_nan=False) + "\n").encode())
            final = model_dir / str(version)
            try:
                os.rename(tmp, final)  # atomic; fails if another writer took this version
                break
            except OSError:
                if not final.exists():
                    raise
                version += 1
        _fsync_dir(model_dir)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
