"""Build the image and check it end to end on 127.0.0.1: `make container-test`.

The container engine is `$CONTAINER_ENGINE` if set, else Docker when its engine answers,
else podman when installed; only when neither is there does it fall back to this project's
machines' podman set-up (../shared/container/setup-podman.sh, rootful podman, needs root).
Needs the default models in artifacts/ (housing and mnist). Steps, each bounded in time, every
container removed at the end even on failure or Ctrl-C:
1. hadolint on the Dockerfile; the engine; the image build.
2. The image: non-root USER, EXPOSE, HEALTHCHECK, exec-form gunicorn CMD; /app holds only what
   serving needs and nothing the app user can write.
3. The image run as the README says: real housing rows and MNIST digits through V1 and V2 (the
   answers equal the in-process Predictor's on the same artifacts and are plausible), bad requests
   get JSON 400/404, metrics, non-root processes, HEALTHCHECK, graceful stop on SIGTERM; gRPC on
   8001 (tritonclient.grpc: readiness, one digit batch equal to V1's answers).
4. The KServe setup: read-only root with no writable /tmp, metrics on /dev/shm, PORT and
   WEB_CONCURRENCY from the environment, and a mounted artifacts folder (housing only) replacing
   the baked-in models.
5. deploy/k8s/deployment.yaml under `podman kube play` (podman only; Docker has no such
   command): its security context, read-only root, emptyDir and limits, with two local-only
   changes (one replica, 127.0.0.1 host ports).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import requests
import yaml
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import Predictor  # noqa: E402
from training.datasets import load_digits, load_housing  # noqa: E402

IMAGE = "localhost/numpy-model-server:test"
SETUP_SCRIPT = ROOT.parent / "shared" / "container" / "setup-podman.sh"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PREFIX = f"nms-test-{os.getpid()}"
APP_UID = "10001"
READY_TIMEOUT = 60       # seconds from `<engine> run` to /v2/health/ready
REQUEST_TIMEOUT = 30
BUILD_TIMEOUT = 900
SETUP_TIMEOUT = 600
COMMAND_TIMEOUT = 60


class Failed(Exception):
    """A check did not hold; the message says which."""


ENGINE = "podman"        # or "docker": chosen by choose_engine() before anything runs


def say(message: str) -> None:
    print(message, flush=True)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)
    say(f"  ok  {message}")


def run(*args: str, timeout: float = COMMAND_TIMEOUT, ok: bool = True,
        quiet: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a command; with ``ok``, a non-zero exit is a failure naming it and its stderr."""
    try:
        proc = subprocess.run(args, capture_output=quiet, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Failed(f"timed out after {timeout:.0f} s: {' '.join(args)}") from None
    if ok and proc.returncode != 0:
        detail = f"\n{proc.stderr.strip()}" if quiet and proc.stderr else ""
        raise Failed(f"exit {proc.returncode}: {' '.join(args)}{detail}")
    return proc


def output(*args: str, timeout: float = COMMAND_TIMEOUT) -> str:
    return run(*args, timeout=timeout, quiet=True).stdout.strip()


def engine(*args: str, **options: Any) -> subprocess.CompletedProcess[str]:
    """``run`` a command of the container engine (`docker ...` or `podman ...`)."""
    return run(ENGINE, *args, **options)


def engine_output(*args: str, timeout: float = COMMAND_TIMEOUT) -> str:
    return output(ENGINE, *args, timeout=timeout)


def inspect_json(*target: str) -> dict[str, Any]:
    """`<engine> [image] inspect` as JSON (podman needs `--format json`, docker's default)."""
    kind, name = (target[0], target[1]) if len(target) == 2 else ("", target[0])
    fmt = ("--format", "json") if ENGINE == "podman" else ()
    return json.loads(engine_output(*filter(None, (kind, "inspect")), *fmt, name))[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool(name: str) -> str:
    """``name`` from this Python's environment (the project venv), else from PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise Failed(f"{name} not found: run `make setup` (it is pinned in the dev extra)")
    return found


# -- the inputs and the answers they must get ---------------------------------------------------
class Reference:
    """Real inputs from data/ and the in-process Predictor's answers for the served artifacts."""

    def __init__(self, artifacts: Path) -> None:
        housing = load_housing(ROOT / "data" / "housing" / "housing.data")
        # The last rows: the protocol's test part, never trained on.
        self.features = housing.features
        self.rows, self.prices = housing.X[-10:], housing.y[-10:]
        digits = load_digits(ROOT / "data" / "mnist-train-10k")
        first = [int(np.flatnonzero(digits.train_labels == d)[0]) for d in range(10)]
        self.images, self.labels = digits.train_images[first], digits.train_labels[first]
        with threadpool_limits(1):      # the service's one BLAS thread
            self.medv = self.predictor(artifacts, "housing").predict(self.rows)
            self.probabilities = self.predictor(artifacts, "mnist").predict(self.images)

    @staticmethod
    def predictor(artifacts: Path, name: str) -> Predictor:
        latest = max(int(p.name) for p in (artifacts / name).iterdir() if p.name.isdigit())
        return Predictor.from_artifact(artifacts / name / str(latest))


# -- containers ---------------------------------------------------------------------------------
class Container:
    """A container by name, reached at ``url`` (a 127.0.0.1 port)."""

    def __init__(self, name: str, url: str, grpc: str | None = None) -> None:
        self.name = name
        self.url = url
        self.grpc = grpc

    @classmethod
    def run(cls, name: str, *options: str, container_port: int = 8000) -> Container:
        """A detached `<engine> run` of the image (HTTP and gRPC, 8001, published on free
        127.0.0.1 ports); remove it with cleanup()."""
        port, grpc_port = free_port(), free_port()
        engine("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:{container_port}",
               "-p", f"127.0.0.1:{grpc_port}:8001", *options, IMAGE, quiet=True)
        return cls(name, f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}")

    def inspect(self) -> dict[str, Any]:
        return inspect_json(self.name)

    def wait_ready(self) -> float:
        """Seconds until GET /v2/health/ready answers 200; fails if it dies or times out."""
        start = time.monotonic()
        while time.monotonic() - start < READY_TIMEOUT:
            try:
                if requests.get(self.url + "/v2/health/ready", timeout=2).status_code == 200:
                    return time.monotonic() - start
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or a worker still importing on a busy machine
            if not self.running():
                raise Failed(f"{self.name} exited before it was ready")
            time.sleep(0.2)
        raise Failed(f"{self.name} not ready within {READY_TIMEOUT} s")

    def running(self) -> bool:
        state = engine("inspect", "-f", "{{.State.Running}}", self.name, ok=False,
                    quiet=True)
        return state.stdout.strip() == "true"

    def logs(self) -> str:
        proc = engine("logs", "--tail", "40", self.name, ok=False, quiet=True)
        return f"--- last log lines of {self.name}\n{proc.stdout}{proc.stderr}---"

    def exec(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return engine("exec", self.name, *args, ok=ok, quiet=True)

    def cleanup(self) -> None:
        grace = ("-t", "5") if ENGINE == "podman" else ()     # docker rm -f kills at once
        engine("rm", "-f", *grace, self.name, ok=False, quiet=True)


@contextlib.contextmanager
def watched(box: Container, remove: Callable[[], Any]) -> Iterator[Container]:
    """Print the container's last log lines if a step fails; always ``remove`` it after."""
    try:
        yield box
    except Exception:
        say(box.logs())
        raise
    finally:
        remove()


def post(url: str, body: Any = None, data: bytes | None = None) -> requests.Response:
    headers = {"Content-Type": "application/json"} if data is not None else None
    return requests.post(url, json=body, data=data, headers=headers, timeout=REQUEST_TIMEOUT)


# -- checks ---------------------------------------------------------------------------------------
def close(served: np.ndarray, local: np.ndarray) -> bool:
    """Equal within the cross-machine tolerance: the container's OpenBLAS may pick another
    kernel than this process (it does not inherit OPENBLAS_CORETYPE), so the last digits of
    a float32 result can differ (docs/DESIGN.md, Reproducibility)."""
    return served.shape == local.shape and bool(np.allclose(served, local, rtol=1e-5,
                                                            atol=1e-6))


def diff(served: np.ndarray, local: np.ndarray) -> float:
    return float(np.max(np.abs(served.astype(np.float64) - local)))


def check_image() -> None:
    say("image")
    info = inspect_json("image", IMAGE)
    config = info["Config"]
    check(config.get("User") == f"{APP_UID}:{APP_UID}", f"USER is {config.get('User')}")
    check({"8000/tcp", "8001/tcp"} <= set(config.get("ExposedPorts") or {}), "EXPOSE 8000 8001")
    health = (info.get("Healthcheck") or config.get("Healthcheck") or {}).get("Test") or []
    check(health[:1] == ["CMD"] and "deploy/healthcheck.py" in health,
          f"HEALTHCHECK (exec form): {health}")
    cmd = config.get("Cmd") or []
    check(cmd[:1] == ["gunicorn"] and "service.app:create_app()" in cmd,
          f"CMD is exec-form gunicorn: {cmd}")
    env = dict(e.split("=", 1) for e in config.get("Env") or [])
    check(env.get("SERVICE_ARTIFACTS_DIR") == "/app/artifacts" and env.get("PORT") == "8000",
          "ENV SERVICE_ARTIFACTS_DIR=/app/artifacts, PORT=8000")
    listing = engine_output("run", "--rm", IMAGE, "python", "-c",
                     "import os; print(' '.join(sorted(os.listdir('/app'))))")
    check(listing.split() == ["artifacts", "deploy", "model", "requirements.txt", "service"],
          f"/app holds only what serving needs: {listing}")
    writable = engine_output("run", "--rm", IMAGE, "find", "/app", "-writable")
    check(writable == "", "nothing in /app is writable by the app user")
    say(f"  image size {int(info['Size']) / 1e6:.0f} MB")


def check_predictions(url: str, ref: Reference) -> None:
    """Both models through V1 and V2; the answers equal the in-process Predictor's."""
    instances = [dict(zip(ref.features, map(float, row), strict=True)) for row in ref.rows]
    resp = post(f"{url}/v1/models/housing:predict", {"instances": instances})
    check(resp.status_code == 200, f"V1 housing predict: {resp.status_code}")
    medv = np.asarray(resp.json()["predictions"], np.float32)
    check(medv.shape == (10,) and all(math.isfinite(v) and 0 < v < 100 for v in medv),
          f"V1 housing: 10 finite prices in $1000s ({', '.join(f'{v:.1f}' for v in medv[:3])}, "
          f"... true {', '.join(f'{v:.1f}' for v in ref.prices[:3])}, ...)")
    mae = float(np.mean(np.abs(medv - ref.prices)))
    check(mae < 10, f"V1 housing: mean error {mae:.2f} on 10 unseen rows (< 10)")
    check(close(medv, ref.medv), "V1 housing equals the in-process Predictor on the same "
                                 f"artifact (largest difference {diff(medv, ref.medv):.1e})")

    body = {"inputs": [{"name": "features", "shape": [10, 13], "datatype": "FP32",
                        "data": ref.rows.ravel().tolist()}]}
    resp = post(f"{url}/v2/models/housing/infer", body)
    check(resp.status_code == 200, f"V2 housing infer: {resp.status_code}")
    out = {o["name"]: o for o in resp.json()["outputs"]}
    check(np.array_equal(np.asarray(out["MEDV"]["data"], np.float32), medv),
          "V2 housing MEDV equals V1, number for number")

    resp = post(f"{url}/v1/models/mnist:predict", {"instances": ref.images.tolist()})
    check(resp.status_code == 200, f"V1 mnist predict: {resp.status_code}")
    predictions = resp.json()["predictions"]
    probs = np.asarray([p["probabilities"] for p in predictions], np.float32)
    labels = np.asarray([p["label"] for p in predictions])
    check(probs.shape == (10, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
          and bool(np.all(probs >= 0)), "V1 mnist: probabilities sum to 1")
    check(np.array_equal(labels, probs.argmax(axis=1)), "V1 mnist: label is the most probable")
    right = int(np.sum(labels == ref.labels))
    check(right >= 8, f"V1 mnist: {right}/10 real digits (one of each) recognised (>= 8)")
    check(close(probs, ref.probabilities), "V1 mnist equals the in-process Predictor on the "
          f"same artifact (largest difference {diff(probs, ref.probabilities):.1e})")

    body = {"inputs": [{"name": "images", "shape": [10, 28, 28], "datatype": "UINT8",
                        "data": ref.images.ravel().tolist()}]}
    resp = post(f"{url}/v2/models/mnist/infer", body)
    check(resp.status_code == 200, f"V2 mnist infer: {resp.status_code}")
    out = {o["name"]: o for o in resp.json()["outputs"]}
    check(np.array_equal(np.asarray(out["label"]["data"]), labels)
          and np.array_equal(np.asarray(out["probabilities"]["data"], np.float32).reshape(10, 10),
                             probs), "V2 mnist label and probabilities equal V1")


def check_grpc(address: str, ref: Reference) -> None:
    """gRPC beside HTTP in the same container: readiness and the digits, as V1 answers them."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(address)
    start = time.monotonic()   # gunicorn starts the gRPC process once HTTP is up
    while True:
        try:
            if client.is_server_ready():
                break
        except InferenceServerException:
            pass
        if time.monotonic() - start > READY_TIMEOUT:
            raise Failed(f"gRPC not ready within {READY_TIMEOUT} s")
        time.sleep(0.2)
    say(f"  gRPC ready {time.monotonic() - start:.1f} s after HTTP")
    check(client.is_model_ready("mnist"), "gRPC ServerReady and ModelReady(mnist) on 8001")
    images = grpcclient.InferInput("images", list(ref.images.shape), "UINT8")
    images.set_data_from_numpy(ref.images.astype(np.uint8))
    res = client.infer("mnist", [images], request_id="container-test")
    check(res.get_response().id == "container-test"
          and close(res.as_numpy("probabilities"), ref.probabilities),
          "gRPC ModelInfer equals the in-process Predictor and echoes the request id")


def check_one_price(url: str, ref: Reference, what: str) -> None:
    resp = post(f"{url}/v1/models/housing:predict", {"instances": [list(map(float, ref.rows[0]))]})
    check(resp.status_code == 200
          and close(np.asarray(resp.json()["predictions"][:1], np.float32), ref.medv[:1]), what)


def check_errors(url: str) -> None:
    for what, resp, status in [
        ("V1 housing row of 3 numbers",
         post(f"{url}/v1/models/housing:predict", {"instances": [[1, 2, 3]]}), 400),
        ("malformed JSON", post(f"{url}/v1/models/mnist:predict", data=b'{"instances": ['), 400),
        ("V2 mnist shape that does not fit the data",
         post(f"{url}/v2/models/mnist/infer", {"inputs": [
             {"name": "images", "shape": [1, 28, 28], "datatype": "FP32", "data": [0.0] * 10}]}),
         400),
        ("unknown model", post(f"{url}/v1/models/nope:predict", {"instances": [[1]]}), 404),
    ]:
        error = resp.json().get("error") if resp.headers.get(
            "Content-Type", "").startswith("application/json") else None
        check(resp.status_code == status and isinstance(error, str) and error,
              f"{what}: {resp.status_code} with a JSON error ({str(error)[:60]!r})")


def check_process(box: Container) -> None:
    check(box.exec("id", "-u").stdout.strip() == APP_UID, f"`id -u` in the container is {APP_UID}")
    uids = box.exec("sh", "-c", "grep -h '^Uid:' /proc/[0-9]*/status").stdout.split()
    check(set(uids) - {"Uid:"} == {APP_UID}, "every process (gunicorn, workers, gRPC) "
                                             f"runs as UID {APP_UID}")
    check(box.exec("touch", "/app/service/app.py", ok=False).returncode != 0,
          "the app user cannot change its code")


def healthcheck(box: Container) -> int:
    """Exit code of the image's HEALTHCHECK run now: `podman healthcheck run`; Docker has no
    such command, so its test command from the image runs in the container."""
    if ENGINE == "podman":
        return engine("healthcheck", "run", box.name, ok=False, quiet=True).returncode
    test = inspect_json("image", IMAGE)["Config"]["Healthcheck"]["Test"]
    if test[0] != "CMD":
        raise Failed(f"HEALTHCHECK is not in exec form: {test}")
    return box.exec(*test[1:], ok=False).returncode


def serve_default(ref: Reference) -> dict[str, float]:
    say(f"container as the README runs it ({ENGINE} run -p 127.0.0.1:PORT:8000 IMAGE)")
    box = Container.run(f"{PREFIX}-default")
    with watched(box, box.cleanup):
        ready = box.wait_ready()
        say(f"  ready {ready:.1f} s after {ENGINE} run")
        models = requests.get(box.url + "/v1/models", timeout=REQUEST_TIMEOUT).json()["models"]
        check({m["name"] for m in models} >= {"housing", "mnist"},
              f"serves the baked-in models: {sorted(m['name'] for m in models)}")
        check_predictions(box.url, ref)
        check_errors(box.url)
        check_grpc(box.grpc, ref)
        metrics = requests.get(box.url + "/metrics", timeout=REQUEST_TIMEOUT).text
        check('model_server_requests_total{' in metrics and 'model="mnist"' in metrics,
              "/metrics counts the requests of all workers")
        check_process(box)
        check(healthcheck(box) == 0, "HEALTHCHECK passes (HTTP and gRPC)")
        start = time.monotonic()
        engine("stop", "-t", "30", box.name, quiet=True, timeout=50)
        took = time.monotonic() - start
        code = engine_output("inspect", "-f", "{{.State.ExitCode}}", box.name)
        check(code == "0" and took < 15, f"SIGTERM stops gunicorn and the gRPC process "
                                         f"gracefully: exit {code} in {took:.1f} s")
    return ready


def serve_kserve_like(ref: Reference, workdir: Path) -> None:
    say("container as KServe runs it: read-only root, no /tmp, env config, mounted artifacts")
    mounted = workdir / "artifacts"
    shutil.copytree(ROOT / "artifacts" / "housing", mounted / "housing")
    for path in [workdir, *mounted.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    # podman mounts a tmpfs on /tmp of a --read-only container unless told not to; docker never
    no_tmpfs = ["--read-only-tmpfs=false"] if ENGINE == "podman" else []
    box = Container.run(f"{PREFIX}-kserve", "--read-only", *no_tmpfs,
                        "-e", "PORT=8080", "-e", "WEB_CONCURRENCY=1",
                        "-e", "PROMETHEUS_MULTIPROC_DIR=/dev/shm/model-server-metrics",
                        "-v", f"{mounted}:/app/artifacts:ro", container_port=8080)
    with watched(box, box.cleanup):
        box.wait_ready()
        check(box.exec("touch", "/tmp/probe", ok=False).returncode != 0,
              "root filesystem and /tmp are read-only")
        models = requests.get(box.url + "/v1/models", timeout=REQUEST_TIMEOUT).json()["models"]
        check([m["name"] for m in models] == ["housing"],
              "the mounted folder replaces the baked-in models (only housing)")
        resp = post(f"{box.url}/v1/models/mnist:predict", {"instances": [[0] * 784]})
        check(resp.status_code == 404, f"mnist is gone: {resp.status_code}")
        check_one_price(box.url, ref, "housing answers from the mounted artifact")
        metrics = requests.get(box.url + "/metrics", timeout=REQUEST_TIMEOUT)
        check(metrics.status_code == 200 and "model_server_requests_total" in metrics.text,
              "metrics kept on /dev/shm")
        table = engine_output("top", box.name, *(["args"] if ENGINE == "podman" else []))
        table = table.splitlines()[1:]
        servers = sum("gunicorn" in line for line in table)
        check(servers == 2, f"PORT=8080 and WEB_CONCURRENCY=1 honoured: master + 1 worker "
                            f"({servers} gunicorn processes)")


def kube_play(ref: Reference, workdir: Path) -> None:
    say("deploy/k8s/deployment.yaml under podman kube play")
    manifest = yaml.safe_load((ROOT / "deploy" / "k8s" / "deployment.yaml").read_text())
    # Local-only changes: podman 4 starts every replica in its own pod and publishes container
    # ports on all interfaces unless a host port is given, so one replica and loopback ports.
    name = f"{PREFIX}-kube"
    manifest["metadata"]["name"] = name
    manifest["spec"]["replicas"] = 1
    pod = manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    container["image"] = IMAGE
    host_ports = {p["name"]: free_port() for p in container["ports"]}   # http, grpc
    for declared in container["ports"]:
        declared.update(hostIP="127.0.0.1", hostPort=host_ports[declared["name"]])
    for volume in pod["volumes"]:          # podman names emptyDir volumes globally
        for mount in container["volumeMounts"]:
            if mount["name"] == volume["name"]:
                mount["name"] = f"{name}-{volume['name']}"
        volume["name"] = f"{name}-{volume['name']}"
    path = workdir / "deployment.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    # podman names the container <deployment>-pod-<replica>-<container>
    box = Container(f"{name}-pod-0-{container['name']}",
                    f"http://127.0.0.1:{host_ports['http']}",
                    f"127.0.0.1:{host_ports['grpc']}")

    def down() -> None:
        engine("kube", "down", str(path), ok=False, quiet=True, timeout=120)

    with watched(box, down):
        engine("kube", "play", str(path), quiet=True, timeout=120)
        box.wait_ready()
        check_one_price(box.url, ref, "serves predictions")
        check_grpc(box.grpc, ref)
        info = box.inspect()
        host = info["HostConfig"]
        check(host.get("ReadonlyRootfs") is True, "read-only root filesystem")
        check(info["Config"].get("User") == f"{APP_UID}:{APP_UID}", f"runs as {APP_UID}")
        check(host.get("Memory") == 1 << 30 and host.get("NanoCpus") == 2_000_000_000,
              "limits: 1 GiB memory, 2 CPUs")
        status = box.exec("grep", "-E", "^(NoNewPrivs|CapEff)", "/proc/1/status").stdout.split()
        check(status == ["CapEff:", "0000000000000000", "NoNewPrivs:", "1"],
              "no capabilities, no privilege escalation")
        check(box.exec("touch", "/tmp/probe", ok=False).returncode == 0,
              "/tmp is the writable emptyDir")


def choose_engine() -> str:
    """`$CONTAINER_ENGINE`; else Docker when its engine answers (a docker client alone is not
    enough); else podman when installed; else this project's machines' podman set-up."""
    wanted = os.environ.get("CONTAINER_ENGINE")
    if wanted:
        if wanted not in ("docker", "podman") or not shutil.which(wanted):
            raise Failed(f"CONTAINER_ENGINE={wanted}: expected docker or podman on PATH")
        return wanted
    if shutil.which("docker") and run("docker", "info", ok=False, quiet=True).returncode == 0:
        return "docker"
    if shutil.which("podman"):
        return "podman"
    if not SETUP_SCRIPT.exists():
        raise Failed("no container engine: install Docker or podman (or set CONTAINER_ENGINE)")
    if os.geteuid() != 0:
        raise Failed(f"no Docker or podman; {SETUP_SCRIPT} installs rootful podman and needs root")
    start = time.monotonic()
    run("bash", str(SETUP_SCRIPT), timeout=SETUP_TIMEOUT)
    say(f"  podman set up by {SETUP_SCRIPT} in {time.monotonic() - start:.0f} s")
    return "podman"


def prepare() -> None:
    global ENGINE
    missing = [n for n in ("housing", "mnist") if not any(
        (ROOT / "artifacts" / n).glob("*/manifest.json"))]
    if missing:
        raise Failed(f"no artifacts/{' or artifacts/'.join(missing)}: the image bakes in the "
                     "default models; train them (README) before building")
    say("hadolint Dockerfile")
    run(tool("hadolint"), str(ROOT / "Dockerfile"))
    check(True, "hadolint: no findings")
    ENGINE = choose_engine()
    say(f"container engine: {ENGINE}")


def podman_build_options() -> list[str]:
    """podman keeps HEALTHCHECK only in Docker's image format. A base image already here is
    used as it is (offline machines, such as this project's, have a local stand-in), and the
    host's CA bundle is mounted for the RUN steps only, so it never enters the image."""
    if ENGINE != "podman":
        return []
    options = ["--format", "docker", "--network", "host"]
    base = next(line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines()
                if line.startswith("FROM "))
    if engine("image", "exists", base, ok=False, quiet=True).returncode == 0:
        options.append("--pull=never")
    if CA_BUNDLE.exists():
        options += ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
    return options


def build() -> float:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    revision = run("git", "-C", str(ROOT), "rev-parse", "HEAD", ok=False, quiet=True)
    old = engine("image", "inspect", "-f", "{{.Id}}", IMAGE, ok=False, quiet=True)
    say(f"{ENGINE} build -t {IMAGE}")
    start = time.monotonic()
    engine("build", *podman_build_options(),
           "--build-arg", f"VERSION={version}",
           "--build-arg", f"REVISION={revision.stdout.strip() or 'unknown'}",
           "-t", IMAGE, str(ROOT), quiet=True, timeout=BUILD_TIMEOUT)
    took = time.monotonic() - start
    say(f"  built in {took:.1f} s")
    if old.returncode == 0 and old.stdout.strip() != engine_output(
            "image", "inspect", "-f", "{{.Id}}", IMAGE):
        # The previous build of this tag, now untagged: drop it (it fails harmlessly if used).
        engine("rmi", old.stdout.strip(), ok=False, quiet=True)
    return took


def remove_leftovers() -> None:
    """Pods and containers of this run that an interrupted step left behind."""
    if not shutil.which(ENGINE):
        return
    kinds = [("container", ("ps", "-a", "--format", "{{.Names}}"))]
    if ENGINE == "podman":
        kinds.insert(0, ("pod", ("ps", "--format", "{{.Name}}")))
    with contextlib.suppress(Failed):
        for kind, listing in kinds:
            names = engine_output(kind, *listing, "--filter", f"name={PREFIX}")
            for name in names.split():
                engine(kind, "rm", "-f", name, ok=False, quiet=True)


def interrupted(signum: int, frame: Any) -> None:
    say("\ninterrupted: removing this run's containers")
    sys.exit(128 + signum)          # SystemExit runs every finally block on the way out


def main() -> int:
    signal.signal(signal.SIGTERM, interrupted)
    start = time.monotonic()
    try:
        prepare()
        ref = Reference(ROOT / "artifacts")
        build_seconds = build()
        check_image()
        with tempfile.TemporaryDirectory(prefix=f"{PREFIX}-") as tmp:
            ready = serve_default(ref)
            serve_kserve_like(ref, Path(tmp))
            if ENGINE != "podman":
                say(f"deploy/k8s/deployment.yaml: skipped ({ENGINE} has no `kube play`)")
            elif os.environ.get("CONTAINER_TEST_KUBE_PLAY", "1") != "0":
                kube_play(ref, Path(tmp))
    except Failed as exc:
        say(f"\nFAILED: {exc}")
        return 1
    finally:
        remove_leftovers()
    say(f"\ncontainer test passed in {time.monotonic() - start:.0f} s "
        f"(build {build_seconds:.1f} s, ready {ready:.1f} s after start)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
