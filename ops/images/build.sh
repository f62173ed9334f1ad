#!/usr/bin/env bash
# Builds the local images the container suite (integration/containers)
# runs on, for machines that cannot pull from a registry:
#
#   $MCPSTREAM_IMAGE  (local/mcpstream:dev)          FROM scratch + the static binary;
#                                                    also the broker (`mcpstream broker`)
#   $SLOWTOOL_IMAGE   (local/mcpstream-slowtool:dev) FROM scratch + the suite's upstream
#                                                    MCP server (integration/containers/slowtool)
#   local/debian:bookworm                            debootstrap minbase, imported
#   $POSTGRES_IMAGE   (local/postgres:15)            Debian's postgresql, trust auth
#   $REDIS_IMAGE      (local/redis:7)                Debian's redis-server
#
# The two FROM scratch images are always rebuilt: cheap, and they must match
# the tree. The Debian-based ones are cached: each carries a label with the
# hash of its recipe (Dockerfile, entrypoint, base image id; for the base:
# suite, variant, mirror), and is rebuilt only when that hash changes, so a
# stale image left on the machine by an older tree is never used. The
# debootstrap rootfs is cached as $IMAGES_CACHE/debian-bookworm-<hash>.tar
# (default /var/cache/mcpstream-images, outside the checkout so that fresh
# clones share it; written to a temporary name, renamed when complete;
# made again after 30 days). REBUILD=1 rebuilds everything. MCPSTREAM_SRC
# builds mcpstream from another checkout (e.g. an exported commit) instead
# of this tree. A POSTGRES_IMAGE or REDIS_IMAGE outside local/ is an
# official image: it is left to testcontainers to pull, never built here.
#
# Needs root (debootstrap) and a running Docker engine (engine.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/ops/images"
cache="${IMAGES_CACHE:-/var/cache/mcpstream-images}"
mkdir -p "$cache"

MCPSTREAM_IMAGE="${MCPSTREAM_IMAGE:-local/mcpstream:dev}"
SLOWTOOL_IMAGE="${SLOWTOOL_IMAGE:-local/mcpstream-slowtool:dev}"
DEBIAN_IMAGE="${DEBIAN_IMAGE:-local/debian:bookworm}"
POSTGRES_IMAGE="${POSTGRES_IMAGE:-local/postgres:15}"
REDIS_IMAGE="${REDIS_IMAGE:-local/redis:7}"
GO="${GO:-go}"
label=io.mcpstream.recipe

log() { echo "build.sh: $*" >&2; }
# recipe_of IMAGE: the recipe hash IMAGE was built from ("" if none/absent).
recipe_of() { docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null || true; }
# current IMAGE HASH: IMAGE exists and was built from recipe HASH.
current() { [ "${REBUILD:-0}" != 1 ] && [ "$(recipe_of "$1")" = "$2" ]; }

# docker build, quiet; the legacy builder's deprecation notice (no buildx
# here) is dropped, real errors are kept.
dbuild() { docker build -q "$@" >/dev/null 2> >(grep -v -e DEPRECATED -e buildx -e '^ *$' >&2); }

if ! docker info >/dev/null 2>&1; then
  log "no Docker engine answers; start one with ops/images/engine.sh (as root)"
  exit 1
fi
t0=$SECONDS

# The FROM scratch images: always rebuilt from the working tree.
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
build_static() { # image dockerfile source-dir package
  log "building $1 from $3"
  mkdir -p "$ctx/$1"
  (cd "$3" && CGO_ENABLED=0 $GO build -trimpath -ldflags="-s -w" -o "$ctx/$1/$(basename "$4")" "$4")
  cp "$here/$2" "$ctx/$1/Dockerfile"
  dbuild -t "$1" "$ctx/$1"
}
build_static "$MCPSTREAM_IMAGE" mcpstream.Dockerfile "${MCPSTREAM_SRC:-$root}" ./cmd/mcpstream
build_static "$SLOWTOOL_IMAGE" slowtool.Dockerfile "$root" ./integration/containers/slowtool

local_image() { case "$1" in local/*) return 0 ;; *) return 1 ;; esac; }

# The Debian base.
# The mirror apt already uses on this machine (deb822 or one-line lists);
# awk reads to the end, so no SIGPIPE trips pipefail.
mirror="${DEBIAN_MIRROR:-$( { grep -hoE '(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null || true; } | awk 'NR == 1 {print $2}')}"
mirror="${mirror:-http://deb.debian.org/debian}"
base_recipe="$(printf 'debootstrap --variant=minbase bookworm %s\n' "$mirror" | sha256sum | cut -c1-16)"
ensure_base() {
  if current "$DEBIAN_IMAGE" "$base_recipe"; then return; fi
  tarball="$cache/debian-bookworm-$base_recipe.tar"
  # Bookworm's point releases move on: a rootfs older than 30 days is made
  # again rather than patched by every image's apt-get.
  find "$cache" -maxdepth 1 -name 'debian-bookworm-*.tar' -mtime +30 -delete 2>/dev/null || true
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
    dir="$(mktemp -d)"
    log "debootstrap bookworm from $mirror"
    debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$cache/debootstrap.log" 2>&1 \
      || { tail -20 "$cache/debootstrap.log" >&2; rm -rf "$dir"; exit 1; }
    tar -C "$dir" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$dir"
  fi
  log "importing $DEBIAN_IMAGE"
  docker import --change "LABEL $label=$base_recipe" - "$DEBIAN_IMAGE" <"$tarball" >/dev/null
}

build_on_base() { # image dockerfile [extra files...]
  local image="$1" df="$2"
  shift 2
  if ! local_image "$image"; then
    log "$image is not a local/ image: used as is"
    return
  fi
  ensure_base
  local base_id recipe
  base_id="$(docker image inspect -f '{{.Id}}' "$DEBIAN_IMAGE")"
  recipe="$( (echo "$base_id"; cat "$here/$df"; for f in "$@"; do cat "$here/$f"; done) | sha256sum | cut -c1-16)"
  if current "$image" "$recipe"; then
    log "$image is current ($recipe)"
    return
  fi
  log "building $image ($recipe)"
  # --network host: apt-get inside the build reaches Debian's mirror the way
  # the host's apt does (the engine runs without NAT, see engine.sh).
  dbuild --network host --label "$label=$recipe" --build-arg BASE="$DEBIAN_IMAGE" \
    -t "$image" -f "$here/$df" "$here"
}
build_on_base "$POSTGRES_IMAGE" postgres.Dockerfile postgres-entrypoint.sh
build_on_base "$REDIS_IMAGE" redis.Dockerfile
log "done in $((SECONDS - t0)) s: $MCPSTREAM_IMAGE $SLOWTOOL_IMAGE $POSTGRES_IMAGE $REDIS_IMAGE"
