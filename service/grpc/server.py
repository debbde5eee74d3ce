"""The gRPC server process: its own registry (refreshed as the HTTP workers' is), data plane
and metrics; bound, started, and stopped gracefully on SIGTERM/SIGINT (SIGHUP rescans the
artifacts folder at once). Created in a process of its own, never before a fork."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures

import grpc
from threadpoolctl import threadpool_limits

from ..config import Settings
from ..core.auth import load_token
from ..core.dataplane import DataPlane
from ..core.logs import AccessLog, configure_logging
from ..core.metrics import RequestMetrics
from ..core.registry import Registry
from .servicer import Servicer, generic_handler

log = logging.getLogger("service.grpc")

#: Seconds in-flight calls get to finish after SIGTERM (gunicorn's graceful_timeout).
GRACE_SECONDS = 30


def threads_for(settings: Settings) -> int:
    """Handler threads: two per core the HTTP side would use (NumPy releases the GIL)."""
    return 2 * settings.worker_count


def build(settings: Settings, bind: str) -> tuple[grpc.Server, int, Registry]:
    """A bound (not yet started) server over a freshly loaded registry, and its port."""
    registry = Registry(settings.artifacts_dir, settings.reload_interval)
    registry.refresh()
    servicer = Servicer(DataPlane(registry, settings.max_instances), RequestMetrics(),
                        AccessLog(), load_token(), settings.max_image_pixels)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads_for(settings),
                                   thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", settings.max_body_bytes),
                 ("grpc.max_send_message_length", -1),
                 ("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((generic_handler(servicer),))
    port = server.add_insecure_port(bind)
    return server, port, registry


def serve(settings: Settings, bind: str) -> int:
    """Serve until SIGTERM or SIGINT, then let in-flight calls finish; the exit status."""
    configure_logging(settings.log_level)
    threadpool_limits(settings.blas_threads)
    try:
        server, port, registry = build(settings, bind)
    except RuntimeError as exc:  # grpcio raises this when the address cannot be bound
        log.error("cannot listen", extra={"fields": {"bind": bind, "error": str(exc)}})
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: registry.refresh())
    server.start()
    log.info("grpc service started", extra={"fields": {
        "bind": bind, "port": port, "artifacts_dir": str(settings.artifacts_dir),
        "models": {n: (m.latest.version if m.latest else None)
                   for n, m in registry.models.items()}}})
    stop.wait()
    log.info("grpc service stopping", extra={"fields": {"grace_seconds": GRACE_SECONDS}})
    server.stop(GRACE_SECONDS).wait()
    return 0
