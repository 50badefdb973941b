#!/bin/sh
# MinIO's `server DIR [--address HOST:PORT]` -> `versitygw --port HOST:PORT posix DIR`, with the
# root credentials from MINIO_ROOT_USER / MINIO_ROOT_PASSWORD. Object metadata goes in user
# xattrs, or in a sidecar folder where the file system has none.
set -eu
[ "${1:-}" = server ] || { echo "usage: server DIR [--address HOST:PORT]" >&2; exit 2; }
shift
dir=${1:-/data}
shift || true
address=:9000
while [ $# -gt 0 ]; do
  case "$1" in
    --address) address=$2; shift 2 ;;
    *) shift ;;
  esac
done
: "${MINIO_ROOT_USER:?MINIO_ROOT_USER is required}" "${MINIO_ROOT_PASSWORD:?MINIO_ROOT_PASSWORD is required}"
meta=""
if ! python3 -c 'import os, sys, tempfile
with tempfile.NamedTemporaryFile(dir=sys.argv[1]) as f:
    os.setxattr(f.name, "user.video-runner-probe", b"1")' "$dir" 2>/dev/null; then
  meta="--sidecar $dir/.sidecar"
  mkdir -p "$dir/.sidecar"
fi
export ROOT_ACCESS_KEY_ID="$MINIO_ROOT_USER" ROOT_SECRET_ACCESS_KEY="$MINIO_ROOT_PASSWORD"
# shellcheck disable=SC2086
exec versitygw --port "$address" --region "${MINIO_REGION:-us-east-1}" --quiet --keep-alive posix $meta "$dir"
