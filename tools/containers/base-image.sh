#!/usr/bin/env bash
# Builds a Debian 12 (bookworm) base image from Debian's packages and imports it into podman,
# for machines where no container registry serves `python:3.11-slim` and friends.
#
#   bash tools/containers/base-image.sh python|java     prints the image name (built if missing)
#
# The package list is tools/containers/base/NAME.txt; the image is tagged with the hash of that
# list and of this script, and its root file system tarball is cached under
# ${VIDEO_RUNNER_CACHE:-~/.cache/video-runner}/base-images/, so a changed list makes a new image
# and an unchanged one is built once. Production builds pass their usual base instead
# (`--build-arg BASE_IMAGE=python:3.11-slim`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

name=${1:?usage: base-image.sh python|java}
list="$CONTAINERS_HERE/base/$name.txt"
[[ -f $list ]] || die "no package list $list"
need podman
tag="localhost/video-runner-base-$name:bookworm-$(hash_of "$list" "${BASH_SOURCE[0]}")"
if podman image exists "$tag"; then
  echo "$tag"
  exit 0
fi
tarball="$CACHE/base-images/$name-${tag##*:}.tar"
if [[ ! -s $tarball ]]; then
  need mmdebstrap
  mkdir -p "$CACHE/base-images"
  packages=$(grep -vE '^\s*(#|$)' "$list" | paste -sd, -)
  t0=$(now)
  say "base $name: mmdebstrap bookworm with $packages"
  # Documentation, man pages and locales are left out, as in Debian's slim images (the empty
  # man1 folder stays: openjdk's postinst links its man page there and fails without it).
  mmdebstrap --variant=apt --format=tar --quiet --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --aptopt='APT::Install-Recommends "false"' --setup-hook='mkdir -p "$1/usr/share/man/man1"' \
    bookworm "$tarball.tmp" >&2
  mv "$tarball.tmp" "$tarball"
  say "base $name: root file system built in $(since "$t0")s ($(du -h "$tarball" | cut -f1))"
fi
podman import --quiet --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' "$tarball" "$tag" >/dev/null
say "base $name: imported as $tag"
echo "$tag"
