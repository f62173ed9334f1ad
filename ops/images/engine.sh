#!/usr/bin/env bash
# Makes sure a Docker engine answers on the default socket, for the container
# suite (integration/containers): installs Debian's docker.io when there is
# no dockerd, starts dockerd in the background when none answers, and waits
# for it (bounded). Does nothing when an engine already answers. Needs root.
#
# The engine it starts runs with --iptables=false: no NAT, so the suite's
# containers reach each other on their own bridge network and the host
# through ports published on 127.0.0.1 (docker-proxy), and nothing beyond.
# Image builds that need Debian's mirror use the host's network instead
# (build.sh: docker build --network host).
#
#   DOCKERD_LOG    dockerd's log (default /var/log/mcpstream-dockerd.log)
#   DOCKERD_FLAGS  replaces the flags above (set and empty: dockerd's defaults, NAT included)
#   ENGINE_WAIT    seconds to wait for the engine (default 90)
set -euo pipefail
log() { echo "engine.sh: $*" >&2; }

answers() { docker info >/dev/null 2>&1; }

if answers; then
  log "a Docker engine answers: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  log "no Docker engine answers, and starting one needs root"
  exit 1
fi
if ! command -v dockerd >/dev/null; then
  log "installing Debian's docker.io"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
# A socket left by an engine that died would make dockerd refuse to start.
if [ -e /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
  rm -f /var/run/docker.pid
fi
logf="${DOCKERD_LOG:-/var/log/mcpstream-dockerd.log}"
read -r -a flags <<<"${DOCKERD_FLAGS---iptables=false --ip-masq=false}"
log "starting dockerd ${flags[*]} (log: $logf)"
# setsid: dockerd must outlive this script and the make/CI step that ran it.
setsid dockerd "${flags[@]}" >"$logf" 2>&1 </dev/null &
wait_s="${ENGINE_WAIT:-90}"
start=$SECONDS
while [ $((SECONDS - start)) -lt "$wait_s" ]; do
  if answers; then
    log "dockerd answers after $((SECONDS - start)) s ($(docker info --format '{{.Driver}}' 2>/dev/null) storage)"
    exit 0
  fi
  sleep 0.5
done
log "dockerd does not answer after ${wait_s} s; its log ends with:"
tail -30 "$logf" >&2
exit 1
