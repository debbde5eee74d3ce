"""Fixtures for trainer tests: small real subsets of the bundled data."""

from pathlib import Path

import pytest

from tests.factories import write_idx
from training.datasets import read_idx

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "data" / "mnist-train-10k"
HOUSING = ROOT / "data" / "housing" / "housing.data"


@pytest.fixture(scope="session")
def real_digits():
    return (read_idx(DIGITS / "train-images-idx3-ubyte.gz"),
            read_idx(DIGITS / "train-labels-idx1-ubyte.gz"))


@pytest.fixture
def small_digits_dir(tmp_path, real_digits) -> Path:
    """800 real training digits as a train pair and 200 others as a t10k pair."""
    images, labels = real_digits
    folder = tmp_path / "digits"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", images[:800])
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels[:800])
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images[800:1000])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels[800:1000])
    return folder
