"""Artifact save/load: exact round trip, integrity checks, no pickle, atomic versions."""

import hashlib
import json
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from model import ArtifactError, list_versions, load_artifact, save_artifact
from model.artifact import MANIFEST_FILE, WEIGHTS_FILE, sha256_file, weights_bytes
from tests.factories import classifier_network, make_classifier, make_regressor, random_images

REQUIRED = ["format_version", "name", "version", "task", "created_at", "layers", "input",
            "output", "preprocessing", "metrics", "training", "weights_sha256"]


def edit_manifest(folder: Path, change) -> None:
    path = folder / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def replace_weights(folder: Path, arrays: dict) -> None:
    """Write new weights and a matching checksum, as an attacker or a bug could."""
    data = weights_bytes(arrays)
    (folder / WEIGHTS_FILE).write_bytes(data)
    edit_manifest(folder, lambda m: m.update(weights_sha256=hashlib.sha256(data).hexdigest()))


def test_round_trip_is_bitwise(tmp_path):
    net = classifier_network("cnn", seed=3)
    folder = make_classifier(tmp_path, network=net)
    assert folder == tmp_path / "mnist" / "1"
    loaded = load_artifact(folder)
    x = random_images(20).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(loaded.network.infer(x), net.infer(x))
    assert loaded.network.get_config() == net.get_config()
    for name, value in net.get_weights().items():
        np.testing.assert_array_equal(loaded.network.get_weights()[name], value)


def test_weights_file_is_plain_float32_npz_with_its_checksum(regressor_dir):
    manifest = json.loads((regressor_dir / MANIFEST_FILE).read_text())
    assert manifest["weights_sha256"] == sha256_file(regressor_dir / WEIGHTS_FILE)
    with np.load(regressor_dir / WEIGHTS_FILE, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["0.W", "0.b", "2.W", "2.b"]
        assert all(npz[k].dtype == np.float32 for k in npz.files)
    assert manifest["layers"][0] == {"type": "Dense", "units": 8, "use_bias": True,
                                     "kernel_initializer": "auto", "bias_initializer": "zeros"}


def test_versions_count_up_and_identical_weights_give_identical_bytes(tmp_path):
    net = classifier_network("mlp")
    first = make_classifier(tmp_path, network=net)
    second = make_classifier(tmp_path, network=net)
    assert (first.name, second.name) == ("1", "2")
    assert list_versions(tmp_path / "mnist") == [1, 2]
    assert sha256_file(first / WEIGHTS_FILE) == sha256_file(second / WEIGHTS_FILE)


def test_concurrent_saves_get_distinct_versions(tmp_path):
    net = classifier_network("mlp")
    results, errors = [], []

    def save():
        try:
            results.append(make_classifier(tmp_path, network=net))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=save) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(int(p.name) for p in results) == [1, 2, 3, 4, 5, 6]
    for p in results:
        assert load_artifact(p).version == int(p.name)
    assert not list((tmp_path / "mnist").glob(".tmp-*"))


def test_a_failed_save_leaves_nothing_behind(tmp_path):
    with pytest.raises(ValueError):
        save_artifact(tmp_path, "mnist", classifier_network("mlp"), {
            "task": "classification", "input": {}, "output": {"labels": list("0123456789")},
            "preprocessing": {}, "metrics": {}, "training": {}},
            extra_files={"../escape.txt": b"x"})
    assert list_versions(tmp_path / "mnist") == []
    assert list((tmp_path / "mnist").iterdir()) == []


def test_an_invalid_manifest_is_never_written(tmp_path):
    with pytest.raises(ArtifactError, match="output.labels"):
        save_artifact(tmp_path, "mnist", classifier_network("mlp"), {
            "task": "classification", "input": {}, "output": {}, "preprocessing": {},
            "metrics": {}, "training": {}})
    assert list((tmp_path / "mnist").iterdir()) == []


def test_tampered_weights_are_refused(regressor_dir):
    path = regressor_dir / WEIGHTS_FILE
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load_artifact(regressor_dir)


@pytest.mark.parametrize("missing", [MANIFEST_FILE, WEIGHTS_FILE])
def test_missing_files_are_refused(regressor_dir, missing):
    (regressor_dir / missing).unlink()
    with pytest.raises(ArtifactError, match=f"missing {missing}"):
        load_artifact(regressor_dir)


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "nope" / "1")


def test_manifest_that_is_not_json(regressor_dir):
    (regressor_dir / MANIFEST_FILE).write_text('{"name": "housing",')
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_artifact(regressor_dir)


@pytest.mark.parametrize("field", REQUIRED)
def test_each_required_manifest_field(regressor_dir, field):
    edit_manifest(regressor_dir, lambda m: m.pop(field))
    with pytest.raises(ArtifactError, match=f"missing field '{field}'"):
        load_artifact(regressor_dir)


@pytest.mark.parametrize("change,message", [
    (lambda m: m.update(version="1"), "'version' must be an integer"),
    (lambda m: m.update(task="ranking"), "'task' must be one of"),
    (lambda m: m.update(name="../etc"), "'name' must be"),
    (lambda m: m["input"].update(shape=[13, 0]), "input.shape"),
    (lambda m: m["input"].update(features=["CRIM"] * 13), "input.features"),
    (lambda m: m.update(layers=[]), "'layers' must be"),
    (lambda m: m.update(weights_sha256="abc"), "'weights_sha256'"),
    (lambda m: m["preprocessing"].update(input=[{"type": "Eval", "code": "1"}]),
     "unknown preprocessing step 'Eval'"),
])
def test_invalid_manifest_values(regressor_dir, change, message):
    edit_manifest(regressor_dir, change)
    from model import Predictor
    with pytest.raises(ArtifactError, match=message):
        Predictor.from_artifact(regressor_dir)


def test_unknown_layer_type_is_refused(regressor_dir):
    edit_manifest(regressor_dir, lambda m: m["layers"].insert(0, {"type": "Lambda", "fn": "x"}))
    with pytest.raises(ArtifactError, match="unknown layer type 'Lambda'"):
        load_artifact(regressor_dir)


def test_architecture_that_does_not_fit_the_weights(regressor_dir):
    edit_manifest(regressor_dir, lambda m: m["layers"][0].update(units=9))
    with pytest.raises(ArtifactError, match=r"weight '0.W' has shape \(13, 8\).*needs \(13, 9\)"):
        load_artifact(regressor_dir)


def test_weights_with_missing_or_extra_arrays(regressor_dir):
    with np.load(regressor_dir / WEIGHTS_FILE) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["7.W"] = arrays.pop("2.W")
    replace_weights(regressor_dir, arrays)
    with pytest.raises(ArtifactError, match=r"missing \['2.W'\], unexpected \['7.W'\]"):
        load_artifact(regressor_dir)


def test_float64_weights_are_refused(regressor_dir):
    with np.load(regressor_dir / WEIGHTS_FILE) as npz:
        arrays = {k: npz[k] for k in npz.files}
    buf_path = regressor_dir / WEIGHTS_FILE
    np.savez(buf_path, **{k: v.astype(np.float64) for k, v in arrays.items()})
    edit_manifest(regressor_dir, lambda m: m.update(weights_sha256=sha256_file(buf_path)))
    with pytest.raises(ArtifactError, match="float64, expected float32"):
        load_artifact(regressor_dir)


class Boom:
    """Unpickling this would create a file: proof the loader executed artifact code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_the_loader_never_unpickles(regressor_dir, tmp_path):
    marker = tmp_path / "pwned"
    with np.load(regressor_dir / WEIGHTS_FILE) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["2.b"] = np.array([Boom(str(marker))], dtype=object)
    path = regressor_dir / WEIGHTS_FILE
    np.savez(path, **arrays)  # numpy pickles object arrays when allowed to
    edit_manifest(regressor_dir, lambda m: m.update(weights_sha256=sha256_file(path)))
    with pytest.raises(ArtifactError, match="cannot read weights"):
        load_artifact(regressor_dir)
    assert not marker.exists()


def test_not_a_zip_with_a_matching_checksum(regressor_dir):
    path = regressor_dir / WEIGHTS_FILE
    path.write_bytes(b"not a zip file at all")
    edit_manifest(regressor_dir, lambda m: m.update(weights_sha256=sha256_file(path)))
    with pytest.raises(ArtifactError, match="cannot read weights"):
        load_artifact(regressor_dir)
    assert not zipfile.is_zipfile(path)


def test_folder_must_match_manifest_name_and_version(regressor_dir):
    moved = regressor_dir.parent / "7"
    shutil.copytree(regressor_dir, moved)
    with pytest.raises(ArtifactError, match="manifest says housing/1, the folder is housing/7"):
        load_artifact(moved)


def test_output_size_must_match_the_labels(tmp_path):
    folder = make_classifier(tmp_path)
    edit_manifest(folder, lambda m: m["output"].update(labels=["a", "b", "c"]))
    with pytest.raises(ArtifactError, match=r"outputs shape \(10,\).*needs \(3,\)"):
        load_artifact(folder)


def test_regressor_round_trip(tmp_path):
    folder = make_regressor(tmp_path, seed=5)
    assert load_artifact(folder).manifest["training"]["seed"] == 5


def test_ensemble_round_trip(tmp_path):
    from model import Dense, Predictor, ReLU, Sequential, ensemble

    members = [Sequential([Dense(6), ReLU(), Dense(1)], input_shape=(13,)).build(seed=s)
               for s in range(3)]
    joined = ensemble(members)
    folder = save_artifact(tmp_path, "housing", joined, {
        "task": "regression", "input": {}, "output": {}, "preprocessing": {},
        "metrics": {}, "training": {}})
    x = np.random.default_rng(0).random((7, 13), dtype=np.float32)
    np.testing.assert_array_equal(Predictor.from_artifact(folder).predict(x),
                                  joined.infer(x)[:, 0])
    np.testing.assert_allclose(joined.infer(x), np.mean([m.infer(x) for m in members], axis=0),
                               rtol=1e-6)
