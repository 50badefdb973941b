#!/usr/bin/env bash
# The containerised system (deploy/compose.yaml) with podman-compose:
#
#   bash tools/containers/compose.sh up [--no-build]   build the images, start everything, wait
#                                                      until the four services are ready
#   bash tools/containers/compose.sh down [--purge]    stop it; --purge also drops the volumes
#   bash tools/containers/compose.sh env               the host-side settings (for `submit`)
#   bash tools/containers/compose.sh ps | logs [SERVICE]
#
# The S3 secret is made once into .stack/compose/s3-secret; .stack/compose/host.env holds the
# settings a client on the host needs (`set -a; source .stack/compose/host.env; set +a`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROOT=$CONTAINERS_ROOT
STATE="$ROOT/.stack/compose"
COMPOSE_FILE="$ROOT/deploy/compose.yaml"
PODMAN_COMPOSE="${PODMAN_COMPOSE:-$ROOT/.venv/bin/podman-compose}"
READY_TIMEOUT=${COMPOSE_READY_TIMEOUT:-300}
# Host ports (compose.yaml's defaults); override them there and here alike.
export KAFKA_HOST_PORT=${KAFKA_HOST_PORT:-19092} S3_HOST_PORT=${S3_HOST_PORT:-19000}
export MONGO_HOST_PORT=${MONGO_HOST_PORT:-37017} RUNNER_HOST_PORT=${RUNNER_HOST_PORT:-18002}
export RUNNER_2_HOST_PORT=${RUNNER_2_HOST_PORT:-18012} INFERENCE_HOST_PORT=${INFERENCE_HOST_PORT:-18003}
export OUTBOX_HOST_PORT=${OUTBOX_HOST_PORT:-18004}

compose() { "$PODMAN_COMPOSE" --file "$COMPOSE_FILE" "$@"; }

credentials() {
  mkdir -p "$STATE"
  local f="$STATE/s3-secret"
  if [[ ! -s $f ]]; then
    (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(30))' >"$f")
  fi
  export S3_ACCESS_KEY_ID=${S3_ACCESS_KEY_ID:-video-runner}
  S3_SECRET_ACCESS_KEY=$(<"$f")
  export S3_SECRET_ACCESS_KEY
  (
    umask 077
    cat >"$STATE/host.env" <<ENV
# written by tools/containers/compose.sh: the compose system, seen from the host
KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_HOST_PORT
S3_ENDPOINT_URL=http://127.0.0.1:$S3_HOST_PORT
S3_ACCESS_KEY_ID=$S3_ACCESS_KEY_ID
S3_SECRET_ACCESS_KEY=$S3_SECRET_ACCESS_KEY
MONGO_URI=mongodb://127.0.0.1:$MONGO_HOST_PORT/
ENV
  )
}

# Waits until GET http://127.0.0.1:PORT/health/ready answers 200 for every PORT.
wait_ready() {
  python3 - "$READY_TIMEOUT" "$@" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + float(sys.argv[1])
pending = set(sys.argv[2:])
while pending and time.monotonic() < deadline:
    for port in sorted(pending):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=3) as r:
                if r.status == 200:
                    pending.discard(port)
        except OSError:
            pass
    time.sleep(1)
if pending:
    sys.exit(f"not ready after {sys.argv[1]} s: ports {sorted(pending)}")
PY
}

cmd_up() {
  local build=1 t0
  [[ ${1:-} == --no-build ]] && build=0
  need podman
  [[ -x $PODMAN_COMPOSE ]] || die "no $PODMAN_COMPOSE: run 'make install' and tools/containers/install.sh"
  t0=$(now)
  if ((build)); then bash "$CONTAINERS_HERE/build.sh" all; fi
  credentials
  compose up -d >"$STATE/up.log" 2>&1 || { tail -n 40 "$STATE/up.log" >&2; die "compose up failed"; }
  wait_ready "$RUNNER_HOST_PORT" "$RUNNER_2_HOST_PORT" "$INFERENCE_HOST_PORT" "$OUTBOX_HOST_PORT" ||
    { compose ps >&2; die "the services are not ready (bash tools/containers/compose.sh logs SERVICE)"; }
  say "compose system ready in $(since "$t0")s; host settings: $STATE/host.env"
}

cmd_down() {
  local opts=()
  [[ ${1:-} == --purge ]] && opts=(--volumes)
  credentials
  compose down "${opts[@]}" >"$STATE/down.log" 2>&1 || { tail -n 20 "$STATE/down.log" >&2; die "compose down failed"; }
  say "compose system down${opts:+ (volumes removed)}"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  env) credentials; cat "$STATE/host.env" ;;
  ps) credentials; compose ps ;;
  logs) shift; credentials; compose logs "$@" ;;
  *) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
