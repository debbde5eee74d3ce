"""The trainer's command line, end to end on small real data."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import HOUSING, ROOT, write_idx

from model import Predictor, load_artifact
from training.__main__ import main
from training.datasets import housing_split, load_housing
from training.evaluate import evaluate
from training.parallel import usable_cpus
from training.report import regression_metrics

QUICK_HOUSING = ["--members", "2", "--epochs", "40", "--patience", "10"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def housing_artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("artifacts")
    assert main(["housing", "--data", str(HOUSING), "--out", str(out), *QUICK_HOUSING]) == 0
    return out / "housing" / "1"


def test_housing_training_writes_a_loadable_artifact(housing_artifact):
    predictor = Predictor.from_artifact(housing_artifact)
    m = predictor.manifest
    assert (housing_artifact / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert m["task"] == "regression" and m["input"]["features"][0] == "CRIM"
    assert m["training"]["samples"] == {"train": 343, "validation": 61, "test": 102}
    assert m["training"]["command"].startswith("python -m training housing")
    assert len(m["training"]["data"]["sha256"]) == 64
    # far better than predicting the training mean (RMSE about 10 on the test rows)
    assert m["metrics"]["test"]["rmse"] < 6.0
    for member in m["training"]["members"]:
        assert member["epochs_run"] >= member["best_epoch"] >= 20  # min_epochs


def test_evaluate_reproduces_the_manifest_test_metric(housing_artifact, tmp_path):
    lines = [ln for ln in HOUSING.read_text().splitlines() if ln.strip()]
    last = tmp_path / "last20.data"
    last.write_text("\n".join(lines[404:]) + "\n")
    manifest = load_artifact(housing_artifact).manifest
    assert evaluate(housing_artifact, last) == manifest["metrics"]["test"]


def test_preprocessing_is_fitted_on_the_training_slice_only(housing_artifact):
    manifest = load_artifact(housing_artifact).manifest
    data = load_housing(HOUSING)
    split = housing_split(len(data.y), seed=0)
    quantiles = np.array(manifest["preprocessing"]["input"][0]["quantiles"])
    expected = np.quantile(data.X[split.train], np.linspace(0, 1, 50), axis=0).T
    np.testing.assert_allclose(quantiles, expected)
    with_val = np.quantile(data.X[np.r_[split.train, split.val]], np.linspace(0, 1, 50), axis=0).T
    assert not np.allclose(quantiles, with_val)
    target = manifest["preprocessing"]["target"]
    assert target["mean"] == pytest.approx(np.log(data.y[split.train]).mean(), rel=1e-6)


def test_the_same_seed_gives_the_same_model(housing_artifact, tmp_path):
    assert main(["housing", "--data", str(HOUSING), "--out", str(tmp_path), *QUICK_HOUSING]) == 0
    again = load_artifact(tmp_path / "housing" / "1").manifest["weights_sha256"]
    assert again == load_artifact(housing_artifact).manifest["weights_sha256"]


def test_versions_count_up(tmp_path, capsys):
    for expected in ("1", "2"):
        code, out, _ = run_cli(capsys, "housing", "--data", str(HOUSING), "--out",
                               str(tmp_path), "--members", "1", "--epochs", "21")
        assert code == 0 and json.loads(out)["artifact"].endswith(f"housing/{expected}")


def test_mnist_mlp_learns_and_evaluate_agrees(small_digits_dir, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "mnist", "--data", str(small_digits_dir), "--out",
                           str(tmp_path), "--arch", "mlp", "--epochs", "8", "--no-augment")
    assert code == 0
    printed = json.loads(out)
    assert printed["test"]["n"] == 200 and printed["test"]["accuracy"] > 0.8
    folder = tmp_path / "mnist" / "1"
    manifest = load_artifact(folder).manifest
    assert manifest["training"]["data"]["test_set"] == "t10k files"
    assert manifest["training"]["samples"] == {"train": 760, "validation": 40, "test": 200}
    result = evaluate(folder, small_digits_dir)
    assert result == manifest["metrics"]["test"]
    assert np.array(result["confusion"]).sum() == 200


def test_mnist_cnn_with_augmentation_and_early_stopping(small_digits_dir, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "mnist", "--data", str(small_digits_dir), "--out",
                           str(tmp_path), "--epochs", "2", "--batch-size", "64",
                           "--patience", "1", "--seed", "3")
    assert code == 0, out
    manifest = load_artifact(tmp_path / "mnist" / "1").manifest
    hp = manifest["training"]["hyperparameters"]
    assert hp["arch"] == "cnn" and hp["augment"] and hp["distortion"]["max_rotation"] > 0
    assert manifest["layers"][1]["type"] == "Conv2D"
    assert json.loads(out)["test"]["accuracy"] > 0.1
    assert manifest["training"]["run"]["threads"] == usable_cpus()  # a CNN: every CPU


def test_threads_are_chosen_recorded_and_reproducible(small_digits_dir, tmp_path, capsys):
    weights = []
    for run in (1, 2):
        code, out, _ = run_cli(capsys, "mnist", "--data", str(small_digits_dir), "--out",
                               str(tmp_path / str(run)), "--epochs", "1", "--batch-size", "64",
                               "--threads", "3")
        assert code == 0, out
        artifact = load_artifact(tmp_path / str(run) / "mnist" / "1")
        assert artifact.manifest["training"]["run"]["threads"] == 3
        weights.append(artifact.network.get_weights())
    for name, w in weights[0].items():
        assert np.array_equal(weights[1][name], w), name


def test_mnist_without_t10k_uses_a_test_slice(tmp_path, real_digits, capsys):
    images, labels = real_digits
    folder = tmp_path / "only-train"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", images[:300])
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels[:300])
    code, out, _ = run_cli(capsys, "mnist", "--data", str(folder), "--out", str(tmp_path),
                           "--arch", "mlp", "--epochs", "1", "--no-augment")
    assert code == 0
    manifest = load_artifact(tmp_path / "mnist" / "1").manifest
    assert manifest["training"]["samples"] == {"train": 255, "validation": 15, "test": 30}
    assert "slice" in manifest["training"]["data"]["test_set"]


@pytest.mark.parametrize("argv,message", [
    (["housing"], "the following arguments are required: --data"),
    (["housing", "--data", "x", "--epochs", "0"], "--epochs: must be at least 1"),
    (["mnist", "--data", "x", "--threads", "0"], "--threads: must be at least 1"),
    (["housing", "--data", "x", "--lr", "-1"], "--lr: must be in (0, 10)"),
    (["housing", "--data", "x", "--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
    (["mnist", "--data", "x", "--arch", "resnet"], "invalid choice: 'resnet'"),
    (["evaluate", "--model", "x"], "required: --data"),
    (["train"], "invalid choice: 'train'"),
])
def test_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_input_files_exit_2_naming_the_problem(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("CRIM,ZN\n1,2\n")
    code, _, err = run_cli(capsys, "housing", "--data", str(bad), "--out", str(tmp_path))
    assert code == 2 and "bad.csv" in err and "missing columns: INDUS" in err
    code, _, err = run_cli(capsys, "mnist", "--data", str(tmp_path / "nowhere"))
    assert code == 2 and "nowhere" in err and "not a folder" in err
    assert not (tmp_path / "housing").exists()


def test_evaluate_refuses_broken_or_mismatched_input(housing_artifact, small_digits_dir,
                                                     tmp_path, capsys):
    code, _, err = run_cli(capsys, "evaluate", "--model", str(housing_artifact), "--data",
                           str(small_digits_dir))
    assert code == 2 and "digits" in err
    broken = tmp_path / "housing" / "1"
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text("{}")
    code, _, err = run_cli(capsys, "evaluate", "--model", str(broken), "--data", str(HOUSING))
    assert code == 2 and "missing weights.npz" in err


def test_help_runs_as_a_real_process():
    out = subprocess.run([sys.executable, "-m", "training", "mnist", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--augment" in out.stdout and "--arch" in out.stdout
    out = subprocess.run([sys.executable, "-m", "training", "housing", "--data", "/nope"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "/nope" in out.stderr and "Traceback" not in out.stderr


def test_regression_metrics():
    assert regression_metrics(np.array([1.0, 3.0]), np.array([2.0, 1.0])) == {
        "rmse": pytest.approx(np.sqrt(2.5)), "mae": 1.5, "n": 2}


def test_validation_loss_is_measured_like_the_training_loss():
    """Both in the scaled log-price space the network is trained in (the plot shows both)."""
    from training.housing import DEFAULTS, fit_ensemble

    data = load_housing(HOUSING)
    split = housing_split(len(data.y), seed=0)
    hp = {**DEFAULTS, "members": 1, "epochs": 30}
    history = fit_ensemble(data.X, data.y, split.train, split.val, hp, seed=0).histories[0]
    last = history.epochs[-1]
    assert 0 < last["val_loss"] < 1 and 0 < last["train_loss"] < 1
    assert last["val_rmse"] < 6
