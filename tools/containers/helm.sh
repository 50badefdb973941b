#!/usr/bin/env bash
# Prints the path of the helm binary the chart tests use, building it first if needed: Helm is
# a Go module, built once with `go install` and cached by version in
# ${VIDEO_RUNNER_CACHE:-~/.cache/video-runner}/helm-VERSION (a few minutes cold, like the
# stack's servers). HELM=/path/to/helm skips the build (any Helm 3.8+ or 4 renders the chart).
set -euo pipefail
HELM_VERSION=4.3.2
CACHE="${VIDEO_RUNNER_CACHE:-$HOME/.cache/video-runner}"
if [[ -n ${HELM:-} ]]; then
  echo "$HELM"
  exit 0
fi
dir="$CACHE/helm-$HELM_VERSION"
if [[ ! -x $dir/bin/helm ]]; then
  # one build at a time (.ci/run starts it in the background, `make test` may ask meanwhile)
  mkdir -p "$CACHE"
  exec 8>"$CACHE/.helm-$HELM_VERSION.lock"
  flock -w 1800 8
fi
if [[ ! -x $dir/bin/helm ]]; then
  command -v go >/dev/null 2>&1 || { echo "go is required to build helm $HELM_VERSION" >&2; exit 1; }
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.helm-$HELM_VERSION.XXXXXX")
  echo "[helm] building helm v$HELM_VERSION with go install (a few minutes cold)" >&2
  t0=$(date +%s)
  if ! (cd "$tmp" && GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false" GOBIN="$tmp/bin" \
    go install -ldflags "-X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION" \
    "helm.sh/helm/v4/cmd/helm@v$HELM_VERSION" >"$tmp/build.log" 2>&1); then
    tail -n 30 "$tmp/build.log" >&2
    rm -rf "$tmp"
    exit 1
  fi
  rm -rf "$dir"
  mv "$tmp" "$dir"
  echo "[helm] built in $(($(date +%s) - t0))s into $dir" >&2
fi
echo "$dir/bin/helm"
