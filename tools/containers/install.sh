#!/usr/bin/env bash
# Installs what the container build and tests need, from Debian's packages: podman (with
# netavark and aardvark-dns for container DNS), runc, mmdebstrap for the base images, and
# podman-compose from PyPI into the project's venv (`make install` makes it; the Makefile's
# test-containers target calls this). Needs root for apt; does nothing that is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PODMAN_COMPOSE_VERSION=1.6.0
missing=()
for tool in podman runc mmdebstrap; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing: ${missing[*]}; run: sudo apt-get install podman runc mmdebstrap" >&2
    exit 1
  fi
  echo "[containers] apt-get install podman runc mmdebstrap" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    podman runc mmdebstrap netavark aardvark-dns uidmap containernetworking-plugins >/dev/null
fi
if ! "$ROOT/.venv/bin/podman-compose" version 2>/dev/null | grep -q "$PODMAN_COMPOSE_VERSION"; then
  "$ROOT/.venv/bin/python" -m pip install --quiet "podman-compose==$PODMAN_COMPOSE_VERSION"
fi
