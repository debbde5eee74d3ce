"""The README's commands, run as written, so the README cannot drift from the code.

Every shell command in a ```bash block must be run here or by `.ci/run`: curl requests go
to a real gunicorn started with the README's own gunicorn command (on 127.0.0.1 and a free
port instead of :8000), the batch scorer and the trainer run in a scratch folder (trainers
with one epoch, on small real subsets where the README names big data), the Python snippets
run as scripts. Where the README shows an output (a ```json block right after a command, or
a `print(...)  # output` comment), the real output must equal it: exactly, except for
model outputs (floats), which were computed on the project machine and are compared within
the cross-machine tolerance of tests/tolerance.py. A command no handler knows fails the test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.factories import write_idx
from tests.service.gunicorn_server import ROOT, Server, free_port, wait_listening
from tests.spark_support import need_spark, spark_missing
from tests.tolerance import assert_json_close, text_close
from training.datasets import read_idx

README = ROOT / "README.md"
README_URL = "localhost:8000"
README_GRPC = "localhost:8001"
CI_SCRIPT = (ROOT / ".ci" / "run").read_text()
CONTAINER_TEST = (ROOT / "deploy" / "container_test.py").read_text()
DIGITS = ROOT / "data" / "mnist-train-10k"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)


@dataclass(frozen=True)
class Command:
    """One shell command of the README, with the output shown right after it (if any)."""

    argv: tuple[str, ...]
    line: int
    expected: str | None = None

    def __str__(self) -> str:
        return f"README.md:{self.line}: {shlex.join(self.argv)}"


def _blocks() -> list[tuple[str, str, int, int]]:
    """The fenced blocks of the README as (language, body, first line, end offset)."""
    text = README.read_text()
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 2, m.end())
            for m in FENCE.finditer(text)]


def _commands() -> list[Command]:
    text = README.read_text()
    blocks = _blocks()
    commands = []
    for i, (lang, body, first, end) in enumerate(blocks):
        if lang != "bash":
            continue
        expected = None
        if i + 1 < len(blocks) and blocks[i + 1][0] == "json":
            between = text[end:text.index("```json", end)]
            if not between.strip():
                expected = blocks[i + 1][1]
        lines = body.replace("\\\n", " ").splitlines()
        block = [Command(tuple(shlex.split(line, comments=True)), first + n)
                 for n, line in enumerate(lines) if shlex.split(line, comments=True)]
        if expected is not None:
            assert len(block) == 1, f"README.md:{first}: an output block follows several commands"
            block = [Command(block[0].argv, block[0].line, expected)]
        commands.extend(block)
    return commands


def _python_snippets() -> list[tuple[str, int]]:
    return [(body, first) for lang, body, first, _ in _blocks() if lang == "python"]


COMMANDS = _commands()


def _kind(cmd: Command) -> str:
    """Which test runs a command (or which part of .ci/run)."""
    argv = cmd.argv
    if argv[0] == "make" and len(argv) == 2:
        return "make"
    if argv[0] in ("curl", "gunicorn", "docker"):
        return argv[0]
    if argv[:3] == ("python", "-m", "service.batch"):
        return "batch"
    if argv[:3] == ("python", "-m", "training"):
        return argv[3] if argv[3] in ("evaluate", "export") else "train"
    if argv == ("source", ".venv/bin/activate"):
        return "activate"
    return "unknown"


def _of_kind(kind: str) -> list[Command]:
    found = [c for c in COMMANDS if _kind(c) == kind]
    assert found, f"the README has no {kind} command any more: update tests/test_readme.py"
    return found


def test_every_readme_command_is_run_somewhere():
    unknown = [str(c) for c in COMMANDS if _kind(c) == "unknown"]
    assert not unknown, "README commands no test runs (add a handler here):\n" + "\n".join(unknown)
    assert COMMANDS[:2] == [Command(("make", "serve"), 4), Command(("make", "test"), 5)], \
        "the README must start with the two commands"


@pytest.mark.parametrize("cmd", _of_kind("make"), ids=str)
def test_make_targets(cmd):
    """`make test`, `lint`, ... are what .ci/run runs; the rest must exist (dry run)."""
    target = cmd.argv[1]
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    dry = subprocess.run(["make", "--no-print-directory", "-n", target], cwd=ROOT, env=env,
                         capture_output=True, text=True)  # clean even when run under make
    assert dry.returncode == 0, dry.stderr
    if target in ("test", "test-kernels", "lint", "check-wheels", "k8s-validate",
                  "container-test"):
        assert f"make {target}\n" in CI_SCRIPT, f".ci/run does not run make {target}"
    elif target == "serve":
        # `make serve` = train missing defaults (committed, so nothing to do) + this gunicorn
        gunicorn = next(c for c in COMMANDS if c.argv[0] == "gunicorn")
        (line,) = [x for x in dry.stdout.splitlines() if " -m gunicorn " in x]
        recipe = shlex.split(line)
        assert recipe[1:] == ["-m", *gunicorn.argv], dry.stdout
    else:
        assert target.startswith("bench-"), f"make {target}: no test runs it"


@pytest.mark.parametrize("cmd", _of_kind("docker"), ids=str)
def test_docker_commands_are_what_the_container_test_runs(cmd):
    """`make container-test` (in .ci/run) runs these with docker or podman: same subcommand,
    same options."""
    assert "make container-test\n" in CI_SCRIPT
    assert f'engine("{cmd.argv[1]}"' in CONTAINER_TEST
    for option in cmd.argv[2:]:
        if option.startswith("-"):
            assert f'"{option.split("=")[0]}' in CONTAINER_TEST, option


# -- the served examples ----------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The committed models served by the README's gunicorn command, on 127.0.0.1."""
    (gunicorn,) = _of_kind("gunicorn")
    work = tmp_path_factory.mktemp("readme-server")
    grpc_port = free_port()
    srv = Server(ROOT / "artifacts", work, env={"WEB_CONCURRENCY": "1",
                                                 "GRPC_PORT": str(grpc_port)},
                 command=list(gunicorn.argv[1:]))
    srv.grpc_address = f"127.0.0.1:{grpc_port}"
    try:
        srv.wait_ready()
        wait_listening(grpc_port)
        yield srv
    finally:
        srv.stop()


def _curl(argv: tuple[str, ...], base_url: str) -> requests.Response:
    """The subset of curl the README uses: -s, --json BODY|@FILE, --data-binary @FILE with
    -H 'Content-Type: ...', one URL."""
    args = list(argv[1:])
    body, url = None, None
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    while args:
        arg = args.pop(0)
        if arg == "-s":
            continue
        if arg in ("--json", "--data-binary"):
            value = args.pop(0)
            body = (ROOT / value[1:]).read_bytes() if value.startswith("@") else value.encode()
        elif arg == "-H":
            name, _, value = args.pop(0).partition(":")
            headers[name.strip()] = value.strip()
        elif not arg.startswith("-") and url is None:
            url = arg
        else:
            raise AssertionError(f"curl option {arg!r} is not understood by this test")
    assert url and url.startswith(README_URL + "/"), url
    url = base_url + url[len(README_URL):]
    if body is None:
        return requests.get(url, timeout=30)
    return requests.post(url, data=body, timeout=30, headers=headers)


@pytest.mark.parametrize("cmd", _of_kind("curl"), ids=str)
def test_curl_examples(cmd, server):
    response = _curl(cmd.argv, server.url)
    assert response.status_code < 500, response.text
    if cmd.expected is None:
        assert response.status_code == 200, response.text
    else:
        assert_json_close(response.json(), json.loads(cmd.expected))


@pytest.mark.timeout(900)  # a Spark snippet starts a JVM
def test_python_snippets(server):
    snippets = _python_snippets()
    assert len(snippets) >= 3
    for code, first in snippets:
        spark = "pyspark" in code
        if spark and spark_missing() and os.environ.get("CI") != "true":
            continue  # the Spark tests say what to install
        code = code.replace(README_URL, server.url.removeprefix("http://"))
        code = code.replace(README_GRPC, server.grpc_address)
        env = {**os.environ, "PYSPARK_PYTHON": sys.executable}  # Spark's Python workers
        run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                             text=True, timeout=400 if spark else 120, env=env)
        assert run.returncode == 0, f"README.md:{first}:\n{run.stderr}"
        for line in code.splitlines():
            shown = re.match(r"print\(.*\)\s+# (.+)$", line)
            if shown:
                assert any(text_close(out, shown.group(1)) for out in run.stdout.splitlines()), \
                    f"README.md:{first}: {line}\nprinted:\n{run.stdout}"


# -- commands that read and write files: run in a scratch folder -------------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder like the checkout: examples/ and data/, and a copy of artifacts/ to add to."""
    work = tmp_path_factory.mktemp("readme-work")
    (work / "examples").symlink_to(ROOT / "examples")
    shutil.copytree(ROOT / "artifacts", work / "artifacts")
    images = read_idx(DIGITS / "train-images-idx3-ubyte.gz")
    labels = read_idx(DIGITS / "train-labels-idx1-ubyte.gz")
    # Real digits, fewer of them: the README's folders hold 10,000 or 60,000.
    small = work / "data" / "mnist-train-10k"
    small.mkdir(parents=True)
    write_idx(small / "train-images-idx3-ubyte.gz", images[:600])
    write_idx(small / "train-labels-idx1-ubyte.gz", labels[:600])
    (work / "data" / "housing").symlink_to(ROOT / "data" / "housing")
    (work / "data" / "typeset-digits").symlink_to(ROOT / "data" / "typeset-digits")
    full = work / "mnist-full"
    full.mkdir()
    for part, sl in (("train", slice(0, 600)), ("t10k", slice(600, 800))):
        write_idx(full / f"{part}-images-idx3-ubyte.gz", images[sl])
        write_idx(full / f"{part}-labels-idx1-ubyte.gz", labels[sl])
    return work


def _run(argv: tuple[str, ...], cwd: Path, replace: dict[str, str] | None = None):
    args = [(replace or {}).get(a, a) for a in argv[1:]]
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=400)  # a Spark command starts a JVM: a minute on a busy machine


@pytest.mark.timeout(600)
@pytest.mark.parametrize("cmd", _of_kind("batch"), ids=str)
def test_batch_commands(cmd, workdir, server):
    spark = "--engine" in cmd.argv and cmd.argv[cmd.argv.index("--engine") + 1] == "spark"
    if spark:
        need_spark()
    run = _run(cmd.argv, workdir, {f"http://{README_URL}": server.url})
    assert run.returncode == 0, run.stderr
    assert cmd.expected is not None, f"{cmd}: show its output"
    # Spark batches rows differently, and numbers computed elsewhere differ in the last
    # digits: the same answers within the cross-machine float32 tolerance
    assert_json_close(json.loads(run.stdout), json.loads(cmd.expected))


def test_remote_batch_writes_what_local_writes(workdir, server, tmp_path):
    """The README says so of its two batch commands on examples/digits.jsonl."""
    local, remote = [c for c in _of_kind("batch") if "examples/digits.jsonl" in c.argv]
    assert "--url" not in local.argv and "--url" in remote.argv
    outputs = []
    for cmd in (local, remote):
        argv = list(cmd.argv)
        argv[argv.index("--output") + 1] = str(tmp_path / f"{len(outputs)}.jsonl")
        assert _run(tuple(argv), workdir, {f"http://{README_URL}": server.url}).returncode == 0
        outputs.append((tmp_path / f"{len(outputs)}.jsonl").read_bytes())
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("cmd", _of_kind("evaluate"), ids=str)
def test_evaluate_commands(cmd, workdir):
    run = _run(cmd.argv, workdir)
    assert run.returncode == 0, run.stderr
    assert cmd.expected is not None, f"{cmd}: show its output"
    assert_json_close(json.loads(run.stdout), json.loads(cmd.expected))


@pytest.mark.parametrize("cmd", _of_kind("export"), ids=str)
def test_export_commands(cmd, workdir):
    """As written, on the committed models: the files it names exist and are valid ONNX."""
    import onnx

    run = _run(cmd.argv, workdir)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["format"] == cmd.argv[cmd.argv.index("--format") + 1]
    out = workdir / cmd.argv[cmd.argv.index("--out") + 1]
    for path in (workdir / p for p in summary["written"]):
        assert path.is_file() and out in (path, *path.parents), path
        if path.suffix == ".onnx":
            onnx.checker.check_model(onnx.load(str(path)), full_check=True)


# Folders the README tells users to fetch, and where this project's machines keep a copy.
DOWNLOADED = {"fashion-mnist": ROOT.parent / "shared" / "data" / "fashion-mnist"}


def _stand_in(workdir: Path, data: str) -> Path:
    """A data folder the README has users download, cut to 300 images: the real data when
    this machine has a copy, else real bundled digits in its place."""
    folder = workdir / "stand-ins" / data
    if not folder.exists():
        folder.mkdir(parents=True)
        real = DOWNLOADED[data]
        source = real if real.is_dir() else workdir / "mnist-full"
        for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                     "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
            write_idx(folder / name, read_idx(source / name)[:300])
    return folder


@pytest.mark.parametrize("cmd", _of_kind("train"), ids=str)
def test_training_commands(cmd, workdir):
    """As written, with one epoch (two housing members) and small real data."""
    argv = list(cmd.argv)
    if "--epochs" in argv:
        argv[argv.index("--epochs") + 1] = "1"
    else:
        argv += ["--epochs", "1"]
    if argv[3] == "housing":
        argv += ["--members", "2"]
    data = argv[argv.index("--data") + 1]
    replace = {}
    assert not data.startswith("../"), f"{cmd}: users have no {data}"
    if data in DOWNLOADED:
        replace[data] = str(_stand_in(workdir, data))
    elif not (workdir / data).exists():
        raise AssertionError(f"{cmd}: no stand-in for {data} in this test")
    out = workdir / argv[argv.index("--out") + 1]
    before = set(out.glob("*/*")) if out.exists() else set()
    run = _run(tuple(argv), workdir, replace)
    assert run.returncode == 0, run.stderr
    metrics = json.loads(run.stdout)
    assert "test" in metrics or "rmse" in metrics or "accuracy" in metrics, metrics
    (new,) = set(out.glob("*/*")) - before
    assert (new / "manifest.json").is_file() and (new / "weights.npz").is_file()
    manifest = json.loads((new / "manifest.json").read_text())
    assert manifest["training"]["command"].startswith(shlex.join(cmd.argv[:4])), manifest
