"""The image's HEALTHCHECK: healthy while a service of this container answers GET /healthz with 200.

One image runs every service, each on a port of its own (RCC_<SERVICE>_PORT, as in shared/settings.py), so the check
asks each of those ports and is satisfied by any; `rcc serve all` answers on all of them, and every process role
(`--role web|relay|consumers|scheduler`) answers on its service's port. Kubernetes uses its own probes instead
(deploy/k8s). Only the standard library: it runs in the image as it is."""

import os
import sys
import urllib.request

DEFAULT_PORTS = {
    "pages": 8080,
    "checkin": 8081,
    "volunteering": 8082,
    "gatherings": 8083,
    "audit": 8084,
    "notify": 8085,
}


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


if __name__ == "__main__":
    ports = [int(os.environ.get(f"RCC_{name.upper()}_PORT", port)) for name, port in DEFAULT_PORTS.items()]
    sys.exit(0 if any(answers(port) for port in ports) else 1)
