"""The image's HEALTHCHECK: 0 when the service in this container answers ``/health/ready``.

One image runs the runner, an inference worker or an outbox-S3 worker, each on its own port
(``HTTP_PORT``, ``INFERENCE_HTTP_PORT``, ``OUTBOX_HTTP_PORT``, or ``--port``): the command line
of the container's first process says which, and the settings give the port.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from itertools import pairwise
from pathlib import Path

from video_runner.settings import load_settings


def service_port(argv: list[str]) -> int | None:
    """The HTTP port of the service that ``argv`` (``video-runner CMD ...``) starts, or None."""
    settings = load_settings()
    ports = {
        "serve": settings.http_port,
        "inference": settings.inference_http_port,
        "outbox-s3": settings.outbox_http_port,
    }
    command = next((word for word in argv[1:] if word in ports), None)
    if command is None:
        return None
    for flag, value in pairwise(argv):
        if flag == "--port":
            return int(value)
    return ports[command]


def main() -> int:
    argv = Path("/proc/1/cmdline").read_bytes().decode().split("\0")
    port = service_port([word for word in argv if word])
    if port is None:
        return 0  # a client command (submit, deps wait...): nothing to check
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=4) as answer:
            return 0 if answer.status == 200 else 1  # noqa: PLR2004
    except (urllib.error.URLError, OSError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
