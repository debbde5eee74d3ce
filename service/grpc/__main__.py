"""``python -m service.grpc [--bind HOST:PORT]``: the Open Inference Protocol over gRPC on
GRPC_PORT (default 8001), configured like the HTTP service (SERVICE_* variables)."""

from __future__ import annotations

import argparse
import sys

from ..config import Settings, SettingsError
from ..core.auth import TokenError, load_token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service.grpc",
        description="Serve the models of SERVICE_ARTIFACTS_DIR over the Open Inference "
                    "Protocol's gRPC API (inference.GRPCInferenceService).")
    parser.add_argument("--bind", metavar="HOST:PORT",
                        help="address to listen on (default 0.0.0.0:$GRPC_PORT, 8001)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        load_token()  # a bad token setting stops start-up with one line
    except (SettingsError, TokenError) as exc:
        parser.exit(2, f"configuration error: {exc}\n")
    from .server import serve  # grpcio and NumPy only once the arguments are good

    return serve(settings, args.bind or f"0.0.0.0:{settings.grpc_port or 8001}")


if __name__ == "__main__":
    sys.exit(main())
