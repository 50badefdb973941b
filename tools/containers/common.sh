# Sourced by tools/containers/*.sh: podman with the project's containers.conf, the cache, names.
# shellcheck shell=bash
CONTAINERS_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONTAINERS_ROOT="$(cd "$CONTAINERS_HERE/../.." && pwd)"
CACHE="${VIDEO_RUNNER_CACHE:-$HOME/.cache/video-runner}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$CONTAINERS_HERE/containers.conf}"

say() { printf '[containers] %s\n' "$*" >&2; }
die() { printf '[containers] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
hash_of() { cat "$@" | sha256sum | cut -c1-12; }

need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 ||
      die "$tool is missing: run 'bash tools/containers/install.sh' (Debian: apt-get install podman runc mmdebstrap)"
  done
}
