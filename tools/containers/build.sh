#!/usr/bin/env bash
# Builds the images of the containerised system with podman:
#
#   bash tools/containers/build.sh [app|servers|all]     (default: all)
#
#   localhost/video-runner:VERSION          the Containerfile at the repository root
#   localhost/video-runner-kafka:4.4.0      Kafka (KRaft) from the jars the local stack fetches
#   localhost/video-runner-s3:1.8.0         versitygw, with MinIO's command line (`server DIR`)
#   localhost/video-runner-mongo:1.24.2     FerretDB on SQLite, on MongoDB's port and /data/db
#
# The bases come from tools/containers/base-image.sh (Debian's packages; no registry needed).
# The servers are the local stack's own builds (tools/stack/stack.sh fetch, cached by version),
# copied into a build context outside the repository. The app build reaches PyPI through the
# machine's CA bundle, mounted read-only for the build steps and never copied into a layer.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

what=${1:-all}
need podman
VERSION=$(sed -nE 's/^version = "([^"]+)"/\1/p' "$CONTAINERS_ROOT/pyproject.toml" | head -n1)
stack_version() { sed -nE "s/^$1=([^ ]+).*/\1/p" "$CONTAINERS_ROOT/tools/stack/stack.sh"; }
KAFKA_VERSION=$(stack_version KAFKA_VERSION)
VERSITYGW_VERSION=$(stack_version VERSITYGW_VERSION)
FERRETDB_VERSION=$(stack_version FERRETDB_VERSION)
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
export VIDEO_RUNNER_IMAGE="localhost/video-runner:$VERSION"
export KAFKA_IMAGE="localhost/video-runner-kafka:$KAFKA_VERSION"
export S3_IMAGE="localhost/video-runner-s3:$VERSITYGW_VERSION"
export MONGO_IMAGE="localhost/video-runner-mongo:$FERRETDB_VERSION"

build_app() {
  local base t0 mounts=()
  base=$(bash "$CONTAINERS_HERE/base-image.sh" python)
  [[ -f $CA_BUNDLE ]] && mounts=(--volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")
  t0=$(now)
  say "building $VIDEO_RUNNER_IMAGE on $base"
  podman build --quiet --layers --format docker "${mounts[@]}" \
    --build-arg BASE_IMAGE="$base" --build-arg VERSION="$VERSION" \
    --build-arg REVISION="$(git -C "$CONTAINERS_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)" \
    --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --file "$CONTAINERS_ROOT/Containerfile" --tag "$VIDEO_RUNNER_IMAGE" "$CONTAINERS_ROOT" >/dev/null
  say "built $VIDEO_RUNNER_IMAGE in $(since "$t0")s"
}

# build_server NAME IMAGE BASE FILE... : a context of deploy/servers/NAME plus FILE... (the
# cached server build), then `podman build`.
build_server() {
  local name=$1 image=$2 base=$3 t0 ctx
  shift 3
  t0=$(now)
  ctx=$(mktemp -d "${TMPDIR:-/tmp}/video-runner-$name.XXXXXX")
  cp -r "$CONTAINERS_ROOT/deploy/servers/$name/." "$ctx/"
  cp -r "$@" "$ctx/"
  podman build --quiet --layers --build-arg BASE_IMAGE="$base" --tag "$image" "$ctx" >/dev/null ||
    { rm -rf "$ctx"; die "building $image failed"; }
  rm -rf "$ctx"
  say "built $image in $(since "$t0")s"
}

build_servers() {
  local python java ferretdb
  bash "$CONTAINERS_ROOT/tools/stack/stack.sh" fetch >&2
  python=$(bash "$CONTAINERS_HERE/base-image.sh" python)
  java=$(bash "$CONTAINERS_HERE/base-image.sh" java)
  # the folder name stack.sh gives its FerretDB build (the hash of tools/ferretdb's sources)
  local fdb="$CONTAINERS_ROOT/tools/ferretdb"
  ferretdb="$CACHE/ferretdb-$FERRETDB_VERSION-$(hash_of "$fdb/go.mod" "$fdb/go.sum" "$fdb/main.go" "$fdb"/patches/*.patch)/ferretdb"
  [[ -x $ferretdb ]] || die "no FerretDB build at $ferretdb"
  build_server kafka "$KAFKA_IMAGE" "$java" "$CACHE/kafka-$KAFKA_VERSION/libs" "$CONTAINERS_ROOT/tools/stack/kafka/log4j2.xml"
  build_server s3 "$S3_IMAGE" "$python" "$CACHE/versitygw-$VERSITYGW_VERSION/bin/versitygw"
  build_server mongo "$MONGO_IMAGE" "$python" "$ferretdb"
}

case "$what" in
  app) build_app ;;
  servers) build_servers ;;
  all) build_servers && build_app ;;
  *) die "usage: build.sh [app|servers|all]" ;;
esac
