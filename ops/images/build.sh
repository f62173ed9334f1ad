#!/usr/bin/env bash
# Builds the local images the container suite (integration/containers)
# runs on, for machines that cannot pull from a registry:
#
#   $MCPSTREAM_IMAGE  (local/mcpstream:dev)   FROM scratch + the static binary;
#                                             also the broker (`mcpstream broker`)
#   local/debian:bookworm                     debootstrap minbase, imported
#   $POSTGRES_IMAGE   (local/postgres:15)     Debian's postgresql, trust auth
#   $REDIS_IMAGE      (local/redis:7)         Debian's redis-server
#
# Idempotent: an image that exists is kept unless REBUILD=1 (the mcpstream
# image is always rebuilt: it is cheap and must match the tree). The
# debootstrap rootfs is cached as .cache/images/debian-bookworm.tar.
# Needs root (debootstrap) and a running Docker engine.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/ops/images"
cache="$root/.cache/images"
mkdir -p "$cache"

MCPSTREAM_IMAGE="${MCPSTREAM_IMAGE:-local/mcpstream:dev}"
DEBIAN_IMAGE="${DEBIAN_IMAGE:-local/debian:bookworm}"
POSTGRES_IMAGE="${POSTGRES_IMAGE:-local/postgres:15}"
REDIS_IMAGE="${REDIS_IMAGE:-local/redis:7}"
GO="${GO:-go}"

have() { [ "${REBUILD:-0}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }
log() { echo "build.sh: $*" >&2; }

if ! docker info >/dev/null 2>&1; then
  log "no Docker engine answers; start one (apt-get install -y docker.io && dockerd &)"
  exit 1
fi

# mcpstream: always rebuilt from the working tree.
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
log "building $MCPSTREAM_IMAGE"
(cd "$root" && CGO_ENABLED=0 $GO build -trimpath -ldflags="-s -w" -o "$ctx/mcpstream" ./cmd/mcpstream)
cp "$here/mcpstream.Dockerfile" "$ctx/Dockerfile"
docker build -q -t "$MCPSTREAM_IMAGE" "$ctx" >/dev/null

# The Debian base, only needed for the images below.
need_base=0
have "$POSTGRES_IMAGE" || need_base=1
have "$REDIS_IMAGE" || need_base=1
if [ $need_base = 1 ] && ! have "$DEBIAN_IMAGE"; then
  tarball="$cache/debian-bookworm.tar"
  if [ ! -s "$tarball" ]; then
    # The mirror apt already uses on this machine (deb822 or one-line lists).
    mirror="${DEBIAN_MIRROR:-$(grep -hoE '(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | head -1 | awk '{print $2}')}"
    mirror="${mirror:-http://deb.debian.org/debian}"
    command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
    dir="$(mktemp -d)"
    log "debootstrap bookworm from $mirror"
    debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$cache/debootstrap.log" 2>&1 \
      || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    tar -C "$dir" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$dir"
  fi
  log "importing $DEBIAN_IMAGE"
  docker import - "$DEBIAN_IMAGE" <"$tarball" >/dev/null
fi

build_on_base() { # image dockerfile
  if have "$1"; then log "$1 exists"; return; fi
  log "building $1"
  docker build -q --build-arg BASE="$DEBIAN_IMAGE" -t "$1" -f "$here/$2" "$here" >/dev/null
}
build_on_base "$POSTGRES_IMAGE" postgres.Dockerfile
build_on_base "$REDIS_IMAGE" redis.Dockerfile
log "done: $MCPSTREAM_IMAGE $POSTGRES_IMAGE $REDIS_IMAGE"
