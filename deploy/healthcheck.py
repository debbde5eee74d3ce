"""Container health check: exit 0 when the local server answers both protocols: HTTP
/v2/health/ready with 200 and, unless GRPC_PORT is 0, the gRPC ServerReady call with ready.

Run by the Dockerfile's HEALTHCHECK inside the container (the image has no curl), so it talks
to 127.0.0.1 on the ports the server binds (PORT, default 8000; GRPC_PORT, default 8001).
"""

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the image's /app: service/

TIMEOUT_SECONDS = 3


def http_problem(port: str) -> str | None:
    """Why HTTP is not ready, or None."""
    url = f"http://127.0.0.1:{port}/v2/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:      # 503 while no model is ready
        status = exc.code
    except OSError as exc:                     # not listening yet, or stuck
        return f"{url}: {exc}"
    return None if status == 200 else f"{url} answered {status}"


def grpc_problem(port: str) -> str | None:
    """Why gRPC is not ready, or None."""
    import grpc

    from service.grpc.proto import grpc_predict_v2_pb2 as pb
    from service.grpc.proto import grpc_predict_v2_pb2_grpc as pb_grpc

    address = f"127.0.0.1:{port}"
    with grpc.insecure_channel(address) as channel:
        try:
            ready = pb_grpc.GRPCInferenceServiceStub(channel).ServerReady(
                pb.ServerReadyRequest(), timeout=TIMEOUT_SECONDS).ready
        except grpc.RpcError as exc:
            return f"grpc {address}: {exc.code().name} {exc.details()}"
    return None if ready else f"grpc {address}: not ready"


def main() -> int:
    http_port = os.environ.get("PORT", "").strip() or "8000"
    grpc_port = os.environ.get("GRPC_PORT", "").strip() or "8001"
    problems = [http_problem(http_port)]
    if grpc_port != "0":
        problems.append(grpc_problem(grpc_port))
    problems = [p for p in problems if p]
    for problem in problems:
        print(f"unhealthy: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
