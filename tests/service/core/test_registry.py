"""Model registry: discovery, broken versions, the latest-version rule, live reloads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service.core.errors import ModelNotFound, NotReady, VersionNotFound
from service.core.registry import Registry
from tests.factories import make_classifier, make_regressor


def corrupt(version_dir: Path) -> None:
    """Flip a byte of the weights so the checksum no longer matches."""
    weights = version_dir / "weights.npz"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "artifacts"
    make_regressor(root)
    make_classifier(root)
    return root


def test_discovers_every_model_and_version(root):
    make_regressor(root, seed=1)
    reg = Registry(root)
    reg.refresh()
    assert list(reg.models) == ["housing", "mnist"]
    assert list(reg.models["housing"].versions) == [1, 2]
    assert reg.get("housing").version == 2
    assert reg.get("housing", "1").version == 1
    assert reg.get("mnist", 1).interface.input_name == "images"


def test_ignores_temp_folders_files_and_odd_names(root):
    (root / "housing" / ".tmp-abc123").mkdir()
    (root / "housing" / "007").mkdir()
    (root / "housing" / "notes.txt").write_text("x")
    (root / ".hidden").mkdir()
    (root / "README").write_text("x")
    reg = Registry(root)
    reg.refresh()
    assert list(reg.models) == ["housing", "mnist"]
    assert list(reg.models["housing"].versions) == [1]


def test_broken_newest_version_is_reported_and_older_one_serves(root):
    corrupt(make_regressor(root, seed=1))
    reg = Registry(root)
    reg.refresh()
    model = reg.models["housing"]
    assert model.ready and model.latest.version == 1
    assert "checksum" in model.versions[2].error
    with pytest.raises(NotReady, match="checksum"):
        reg.get("housing", "2")
    assert reg.get("mnist").ready


def test_model_with_no_loadable_version_is_not_ready(root):
    corrupt(root / "mnist" / "1")
    reg = Registry(root)
    reg.refresh()
    with pytest.raises(NotReady, match="not ready"):
        reg.get("mnist")
    assert reg.get("housing").ready


@pytest.mark.parametrize("version", ["3", "x", "01", "-1", 0])
def test_unknown_names_and_versions(root, version):
    reg = Registry(root)
    reg.refresh()
    with pytest.raises(ModelNotFound):
        reg.get("nope")
    with pytest.raises(VersionNotFound):
        reg.get("housing", version)


def test_names_limit_loading_but_not_the_listing(root):
    reg = Registry(root, names={"mnist"})
    reg.refresh()
    assert list(reg.models) == ["mnist"] and reg.get("mnist").version == 1
    with pytest.raises(ModelNotFound, match="models: housing, mnist"):
        reg.get("nope")


def test_empty_or_missing_folder_loads_nothing(tmp_path):
    for folder in (tmp_path / "missing", tmp_path):
        reg = Registry(folder)
        reg.refresh()
        assert reg.loaded and dict(reg.models) == {}


def test_refresh_picks_up_new_changed_and_removed_versions(root):
    reg = Registry(root)
    reg.refresh()
    first = reg.models["housing"].versions[1]
    assert reg.refresh() is False
    assert reg.models["housing"].versions[1] is first  # unchanged: not reloaded

    new = make_regressor(root, seed=4)
    assert reg.refresh() is True
    assert reg.get("housing").version == 2

    corrupt(new)
    reg.refresh()
    assert reg.get("housing").version == 1 and not reg.models["housing"].versions[2].ready

    shutil.rmtree(new)
    reg.refresh()
    assert list(reg.models["housing"].versions) == [1]
    shutil.rmtree(root / "mnist")
    reg.refresh()
    assert list(reg.models) == ["housing"]


def test_maybe_refresh_is_rate_limited():
    now = [100.0]
    calls = []

    class Counting(Registry):
        def _rescan(self):
            calls.append(now[0])
            return False

    reg = Counting("unused", reload_interval=5, clock=lambda: now[0])
    reg.refresh()
    for t in (101, 104.9, 105, 106, 110.5):
        now[0] = t
        reg.maybe_refresh()
    assert calls == [100, 105, 110.5]
    off = Counting("unused", reload_interval=0, clock=lambda: now[0])
    off.refresh()
    now[0] = 1e9
    off.maybe_refresh()
    assert len(calls) == 4


def test_app_serves_new_version_without_restart(make_app, artifacts):
    client = make_app(reload_interval=0.001).test_client()
    assert client.get("/v1/models/mnist").get_json()["version"] == "1"
    make_classifier(artifacts, seed=7)
    status = client.get("/v1/models/mnist").get_json()
    assert status["version"] == "2"
    assert [v["version"] for v in status["versions"]] == ["1", "2"]
