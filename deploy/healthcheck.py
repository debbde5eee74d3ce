"""Container health check: exit 0 when the local server answers /v2/health/ready with 200.

Stdlib only (the image has no curl). Run by the Dockerfile's HEALTHCHECK inside the container,
so it talks to 127.0.0.1 on the port the server binds (PORT, default 8000).
"""

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 3


def main() -> int:
    url = f"http://127.0.0.1:{os.environ.get('PORT', '').strip() or '8000'}/v2/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:      # 503 while no model is ready
        status = exc.code
    except OSError as exc:                     # not listening yet, or stuck
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
