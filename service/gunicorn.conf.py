"""gunicorn settings for production.

    gunicorn -c service/gunicorn.conf.py "service.app:create_app()"

Read by the master before any worker starts (and again on ``kill -HUP``, which starts new
workers with freshly loaded models and lets the old ones finish their requests). The master
also runs the gRPC front end (``python -m service.grpc`` on GRPC_PORT) as its companion
process: started once ready, told of HUP, stopped gracefully on exit.
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from service.config import Settings, SettingsError  # noqa: E402
from service.core.auth import TokenError, load_token  # noqa: E402

try:
    _settings = Settings.from_env()
    load_token()  # a bad token setting stops start-up here, not in every worker
except (SettingsError, TokenError) as exc:
    sys.exit(f"configuration error: {exc}")

# One BLAS thread per worker, set before any worker imports NumPy: results are bitwise
# reproducible and the workers (one per core) do not fight over cores.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(_settings.blas_threads)

# Metrics from all workers are summed through files in this folder (prometheus_client's
# multiprocess mode). Created once; kept across HUP reloads; emptied in on_starting.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="model-server-metrics-")
    os.environ["SERVICE_OWNED_METRICS_DIR"] = os.environ["PROMETHEUS_MULTIPROC_DIR"]

bind = [f"0.0.0.0:{_settings.port}"]
workers = _settings.worker_count
# gevent connections, one prediction computing at a time per worker; time limits and a
# drained stop (service/http/worker.py; why: docs/ROBUSTNESS.md).
worker_class = "service.http.worker.ServiceWorker"
worker_connections = _settings.max_connections
timeout = 60             # a worker silent this long (stuck) is killed and replaced
graceful_timeout = 30    # on SIGTERM/HUP, in-flight requests get this long to finish
# Keep-alive on or off (SERVICE_KEEPALIVE_TIMEOUT=0: one request per connection); the
# worker times idle connections and request heads itself (pre_fork below).
keepalive = 1 if _settings.keepalive_timeout else 0
# Request heads beyond these get 400 (431 for fields) from gunicorn's parser.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
backlog = 2048
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
loglevel = _settings.log_level.lower()
errorlog = "-"
# The app writes one JSON line per request (request id, model, version, latency), so
# gunicorn's own access log is off by default; set GUNICORN_ACCESS_LOG=- to add it.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# gunicorn's own lines (start-up, worker exits) as JSON too, without turning on its access
# log the way a logconfig_dict would.
logger_class = "service.http.logs.GunicornLogger"
# Several servers may run side by side (tests, benchmarks); none needs gunicornc.
control_socket_disable = True


def on_starting(server):
    """Start with empty metrics: drop files left by an earlier run in the same folder."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def pre_fork(server, worker):
    """Give the worker its memory limit (SERVICE_MAX_WORKER_MEMORY) and time limits
    (SERVICE_HEADER_TIMEOUT, SERVICE_KEEPALIVE_TIMEOUT)."""
    worker.max_memory_mib = _settings.max_worker_memory
    worker.head_timeout = _settings.header_timeout
    worker.idle_timeout = _settings.keepalive_timeout


def when_ready(server):
    """Serve gRPC beside HTTP (GRPC_PORT, 0: none) on the host HTTP binds, in its own
    process: started by the master, never before a fork, stopped with it."""
    if _settings.grpc_port:
        from service.grpc.launcher import GrpcProcess, host_of

        server.grpc = GrpcProcess(host_of(server.cfg.bind[0]), _settings.grpc_port)


def on_reload(server):
    """kill -HUP: the gRPC process rescans the models too (new HTTP workers load them)."""
    if getattr(server, "grpc", None):
        server.grpc.reload()


def child_exit(server, worker):
    """Tell prometheus_client a worker is gone so its live gauges stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Stop the gRPC process gracefully; remove the metrics folder if this configuration
    created it."""
    if getattr(server, "grpc", None):
        server.grpc.stop(graceful_timeout)
    owned = os.environ.get("SERVICE_OWNED_METRICS_DIR")
    if owned and owned == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(owned, ignore_errors=True)
