"""The batch scorer's remote mode against a real gunicorn on 127.0.0.1: the same bytes as
local mode (also for a CNN and for bad rows), request splitting, retries, failures."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from service.batch.cli import main
from service.batch.remote import RemoteModel
from tests.factories import (
    HOUSING_FEATURES,
    make_classifier,
    make_regressor,
    random_housing,
    random_images,
)
from tests.service.batch.test_batch import housing_csv, idx_file, with_cell
from tests.service.core.test_registry import corrupt
from tests.service.gunicorn_server import RELOAD_INTERVAL, ROOT, Server, free_port, running

#: Small limits, so that default-sized requests get split (400 "too many", 413).
LIMITS = {"SERVICE_MAX_INSTANCES": "50", "SERVICE_MAX_BODY_BYTES": str(64 * 1024),
          "SERVICE_LOG_LEVEL": "WARNING"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("batch-remote")
    artifacts = workdir / "artifacts"
    make_regressor(artifacts)
    make_classifier(artifacts, arch="cnn")
    with running(artifacts, workdir, env=LIMITS) as srv:
        yield srv


def both(capsys, server, tmp_path: Path, *args: str | Path,
         suffix: str = ".csv") -> tuple[Path, Path, str]:
    """Run the scorer locally and remotely; (local output, remote output, remote stderr)."""
    results = []
    for mode in ("local", "remote"):
        out = tmp_path / f"{mode}{suffix}"
        extra = ["--url", server.url] if mode == "remote" else []
        code = main(["--artifacts", str(server.artifacts), "--no-progress", "--output",
                     str(out), *map(str, args), *extra])
        _, err = capsys.readouterr()
        results.append((code, out, err))
    (code_l, local, err_l), (code_r, remote, err_r) = results
    assert code_l == code_r, (err_l, err_r)
    return local, remote, err_r


def report(output: Path) -> bytes:
    path = output.with_name(output.name + ".errors.jsonl")
    return path.read_bytes() if path.exists() else b""


def test_housing_csv_with_bad_rows_is_byte_identical(capsys, server, tmp_path):
    x = random_housing(230, seed=1)
    src = housing_csv(tmp_path / "in.csv", x, HOUSING_FEATURES[::-1], np.arange(230.0))
    lines = src.read_text().splitlines()
    lines[5] = with_cell(lines[5], 2, "nan")
    lines[90] = with_cell(lines[90], 0, "oops")
    src.write_text("\n".join(lines) + "\n")
    # chunks of 120 rows: the server takes 50 at most, so requests are halved
    local, remote, err = both(capsys, server, tmp_path, "--model", "housing", "--input", src,
                              "--chunk-size", "120")
    assert local.read_bytes() == remote.read_bytes()
    assert report(local) == report(remote) and report(remote).count(b"\n") == 2
    assert f"through {server.url}" in err and "228 of 230 rows" in err


@pytest.mark.parametrize("fmt", ["idx", "jsonl"])
def test_cnn_digits_are_byte_identical(capsys, server, tmp_path, fmt):
    images = random_images(150, seed=2)
    if fmt == "idx":
        src = idx_file(tmp_path / "t10k-images-idx3-ubyte.gz", images, compress=True)
        idx_file(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(150) % 10, compress=True)
    else:
        rows = [img.tolist() for img in images]
        rows[7][3][3] = 300          # out of range: reported, never sent
        rows[8] = rows[8][:27]       # wrong shape
        src = tmp_path / "in.jsonl"
        src.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    # 150 images of 784 pixels exceed the 64 KiB body limit: 413, halved until they fit
    local, remote, err = both(capsys, server, tmp_path, "--model", "mnist", "--input", src,
                              "--chunk-size", "150", "--workers", "3", suffix=f".{fmt}.jsonl")
    assert local.read_bytes() == remote.read_bytes()
    assert report(local) == report(remote)
    assert len(remote.read_text().splitlines()) == (150 if fmt == "idx" else 148)


def test_rows_the_server_refuses_go_to_the_report(server):
    """Rows that pass a (here deliberately looser) local check but not the server's are
    reported with the server's own details, and the rest are still scored."""
    model = RemoteModel(server.url, "mnist", None, timeout=10, retries=0, workers=1,
                        max_rows=40)
    model.interface = dataclasses.replace(model.interface, value_range=None)
    x = random_images(30, seed=3).reshape(30, 784).astype(np.float32)
    x[[4, 17], 0] = 999
    prediction, refused = model.predict(x)
    assert sorted(refused) == [4, 17]
    assert refused[4] == ["value 0 is 999, outside the allowed range [0, 255]"]
    assert prediction.probabilities.shape == (28, 10)


def test_retries_until_a_version_becomes_ready(capsys, server, tmp_path):
    """A 503 (version not loaded yet) is retried with backoff until the version serves."""
    artifacts = server.artifacts
    good = make_regressor(tmp_path / "spare", name="late")
    broken = make_regressor(artifacts, name="late")
    corrupt(broken)
    time.sleep(3 * RELOAD_INTERVAL + 0.3)  # both workers list it now, as not ready

    def repair() -> None:
        time.sleep(1.0)
        shutil.copy(good / "weights.npz", broken / "weights.npz.new")
        (broken / "weights.npz.new").replace(broken / "weights.npz")

    fixer = threading.Thread(target=repair)
    fixer.start()
    src = housing_csv(tmp_path / "in.csv", random_housing(5), HOUSING_FEATURES)
    started = time.monotonic()
    code = main(["--model", "late", "--version", "1", "--input", str(src), "--output",
                 str(tmp_path / "o.csv"), "--url", server.url, "--retries", "6"])
    fixer.join()
    _, err = capsys.readouterr()
    assert code == 0, err
    assert 0.9 < time.monotonic() - started < 20


def test_scorer_waits_for_a_service_that_is_starting(server, tmp_path):
    """Started against a port where gunicorn comes up a moment later (a real process)."""
    port = free_port()
    src = housing_csv(tmp_path / "in.csv", random_housing(20), HOUSING_FEATURES)
    out = tmp_path / "o.jsonl"
    scorer = subprocess.Popen(
        [sys.executable, "-m", "service.batch", "--model", "housing", "--input", str(src),
         "--output", str(out), "--url", f"http://127.0.0.1:{port}", "--retries", "8"],
        cwd=ROOT, stderr=subprocess.PIPE, text=True)
    late = None
    try:
        time.sleep(0.5)
        late = Server(server.artifacts, tmp_path, port=port, env={"WEB_CONCURRENCY": "1",
                                                                  **LIMITS})
        _, err = scorer.communicate(timeout=60)
    finally:
        if scorer.poll() is None:
            scorer.kill()
            scorer.wait()
        if late is not None:
            late.stop()
    assert scorer.returncode == 0, err
    assert len(out.read_text().splitlines()) == 20


def test_unreachable_service_exits_1_and_writes_nothing(capsys, tmp_path):
    src = housing_csv(tmp_path / "in.csv", random_housing(3), HOUSING_FEATURES)
    code = main(["--model", "housing", "--input", str(src), "--output",
                 str(tmp_path / "o.csv"), "--url", f"http://127.0.0.1:{free_port()}",
                 "--retries", "1", "--timeout", "2"])
    _, err = capsys.readouterr()
    assert code == 1 and "no answer after 2 attempts" in err and "Traceback" not in err
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--model", "nope"], "model 'nope' not found"),
    (["--model", "housing", "--version", "9"], "model 'housing' has no version '9'"),
])
def test_unknown_model_or_version_on_the_server_exits_2(capsys, server, tmp_path, args,
                                                         fragment):
    src = housing_csv(tmp_path / "in.csv", random_housing(3), HOUSING_FEATURES)
    code = main([*args, "--input", str(src), "--output", str(tmp_path / "o.csv"), "--url",
                 server.url])
    _, err = capsys.readouterr()
    assert code == 2 and fragment in err, err


def test_picture_folder_remote_is_local(capsys, server, tmp_path):
    """Pictures are prepared on the client in both modes; the service scores the same pixels."""
    from tests.service.batch.test_batch_images import picture_folder

    picture_folder(tmp_path / "digits", 5)
    local, remote, err = both(capsys, server, tmp_path, "--model", "mnist", "--input",
                              tmp_path / "digits")
    assert "scored 5 of 5 rows" in err
    assert local.read_bytes() == remote.read_bytes()
