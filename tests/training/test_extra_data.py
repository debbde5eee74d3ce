"""``python -m training mnist --extra-data DIR``: extra digits train, never validate or test.

Real files throughout: 800 bundled MNIST digits (and 200 as t10k) with the committed
``data/typeset-digits`` folder (or its first 600 digits, to train quickly) as extra data.
"""

import json

import numpy as np
import pytest
from conftest import ROOT, write_idx

from model import Predictor, load_artifact
from model.idx import read_idx
from training.__main__ import main
from training.datasets import load_extra_digits, random_split
from training.mnist import DEFAULTS, training_split
from training.report import classification_metrics

TYPESET = ROOT / "data" / "typeset-digits"
QUICK_MLP = ["--arch", "mlp", "--epochs", "6", "--no-augment"]


@pytest.fixture(scope="module")
def typeset():
    return (read_idx(TYPESET / "train-images-idx3-ubyte.gz"),
            read_idx(TYPESET / "train-labels-idx1-ubyte.gz"))


@pytest.fixture
def typeset_600(tmp_path, typeset):
    """The first 600 committed typeset digits as their own extra folder."""
    folder = tmp_path / "typeset-600"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", typeset[0][:600])
    write_idx(folder / "train-labels-idx1-ubyte.gz", typeset[1][:600])
    return folder


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_training_split_is_the_train_rows_then_every_extra_folder(small_digits_dir):
    images = read_idx(small_digits_dir / "train-images-idx3-ubyte.gz")
    labels = read_idx(small_digits_dir / "train-labels-idx1-ubyte.gz").astype(np.int64)
    split = random_split(len(images), 0.0, 0.05, seed=0)
    extra = load_extra_digits(TYPESET, (28, 28))
    x, y = training_split(images, labels, split.train, [extra, extra])
    n = split.train.size
    assert len(x) == len(y) == n + 2 * len(extra.labels) and y.dtype == np.int64
    np.testing.assert_array_equal(x[:n], images[split.train])
    np.testing.assert_array_equal(x[n:n + len(extra.labels)], extra.images)
    np.testing.assert_array_equal(y[n:n + len(extra.labels)], extra.labels)
    # no validation row is among the training rows
    val = {images[i].tobytes() for i in split.val}
    assert not val & {row.tobytes() for row in x}


def test_extra_digits_reach_training_and_never_the_validation_or_test_sets(
        small_digits_dir, tmp_path, capsys, typeset, typeset_600):
    code, out, err = run_cli(capsys, "mnist", "--data", str(small_digits_dir), "--out",
                             str(tmp_path / "plain"), *QUICK_MLP)
    assert code == 0, err
    code, out, err = run_cli(capsys, "mnist", "--data", str(small_digits_dir), "--out",
                             str(tmp_path / "extra"), "--extra-data", str(typeset_600),
                             *QUICK_MLP)
    assert code == 0, err
    printed = json.loads(out)
    folder = tmp_path / "extra" / "mnist" / "1"
    manifest = load_artifact(folder).manifest
    n_typeset = 600
    assert manifest["training"]["samples"] == {"train": 760 + n_typeset, "validation": 40,
                                               "test": 200, "train_extra": n_typeset}
    [record] = manifest["training"]["data"]["extra_training_data"]
    assert record["folder"] == str(typeset_600) and record["digits"] == n_typeset
    assert set(record["sha256"]) == {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"}
    assert "--extra-data" in manifest["training"]["command"]

    # the validation metrics are those of the seeded MNIST slice of --data, nothing else
    images = read_idx(small_digits_dir / "train-images-idx3-ubyte.gz")
    labels = read_idx(small_digits_dir / "train-labels-idx1-ubyte.gz").astype(np.int64)
    split = random_split(len(images), 0.0, DEFAULTS["mlp"]["val_fraction"], seed=0)
    model = Predictor.from_artifact(folder)
    assert manifest["metrics"]["validation"] == classification_metrics(
        model.predict(images[split.val]), labels[split.val], 10)
    assert printed["test"]["n"] == 200

    # and the typeset digits were learnt: far better on them than the same run without
    plain = Predictor.from_artifact(tmp_path / "plain" / "mnist" / "1")
    x, y = typeset[0][:600], typeset[1][:600]
    with_extra = float((model.predict(x).argmax(1) == y).mean())
    without = float((plain.predict(x).argmax(1) == y).mean())
    assert with_extra > 0.95 and with_extra > without + 0.1, (with_extra, without)


def test_extra_data_is_repeatable(small_digits_dir, tmp_path, capsys, real_digits):
    images, labels = real_digits
    more = tmp_path / "more"
    more.mkdir()
    write_idx(more / "train-images-idx3-ubyte.gz", images[5000:5100])
    write_idx(more / "train-labels-idx1-ubyte.gz", labels[5000:5100])
    code, _, err = run_cli(capsys, "mnist", "--data", str(small_digits_dir), "--out",
                           str(tmp_path), "--arch", "mlp", "--epochs", "1", "--no-augment",
                           "--extra-data", str(TYPESET), "--extra-data", str(more))
    assert code == 0, err
    samples = load_artifact(tmp_path / "mnist" / "1").manifest["training"]["samples"]
    assert samples["train_extra"] == 2190 + 100 and samples["validation"] == 40


def _folder(tmp_path, name, **files):
    folder = tmp_path / name
    folder.mkdir()
    for file, array in files.items():
        write_idx(folder / f"{file.replace('_', '-')}.gz", array)
    return folder


@pytest.mark.parametrize("make,message", [
    (lambda tmp, imgs, lbls: tmp / "nowhere", "not a folder"),
    (lambda tmp, imgs, lbls: _folder(tmp, "labels-only",
                                     train_labels_idx1_ubyte=lbls[:10]),
     "missing train-images-idx3-ubyte[.gz]"),
    (lambda tmp, imgs, lbls: _folder(tmp, "with-test", train_images_idx3_ubyte=imgs[:10],
                                     train_labels_idx1_ubyte=lbls[:10],
                                     t10k_images_idx3_ubyte=imgs[10:20],
                                     t10k_labels_idx1_ubyte=lbls[10:20]),
     "must not hold t10k-* files"),
    (lambda tmp, imgs, lbls: _folder(tmp, "small", train_images_idx3_ubyte=imgs[:10, :20, :20],
                                     train_labels_idx1_ubyte=lbls[:10]),
     "images are 20x20 but the training data's are 28x28"),
    (lambda tmp, imgs, lbls: _folder(tmp, "short", train_images_idx3_ubyte=imgs[:10],
                                     train_labels_idx1_ubyte=lbls[:9]),
     "has 10 images but train-labels-idx1-ubyte.gz has 9 labels"),
])
def test_a_missing_or_bad_extra_folder_exits_2_naming_it(make, message, small_digits_dir,
                                                         tmp_path, capsys, real_digits):
    folder = make(tmp_path, *real_digits)
    code, out, err = run_cli(capsys, "mnist", "--data", str(small_digits_dir), "--out",
                             str(tmp_path / "out"), "--arch", "mlp", "--epochs", "1",
                             "--extra-data", str(folder))
    assert code == 2 and out == ""
    assert err.startswith("error: ") and str(folder) in err and message in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_help_says_extra_data_trains_only(capsys):
    with pytest.raises(SystemExit) as info:
        main(["mnist", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert info.value.code == 0
    assert "--extra-data DIR" in text and "training split only" in text
    assert "validation split" in text and "early stopping" in text
