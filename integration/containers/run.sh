#!/usr/bin/env bash
# Runs the container suite the way `make integration` and CI do: builds the
# local images (ops/images/build.sh; SKIP_BUILD=1 skips that), runs
# `go test -tags containers` on them, and then checks that every test of the
# suite really ran: a skipped test, or a test that never reported, fails the
# run even when go test itself exited 0 (a skipped suite must never pass).
#
#   SUITE_RUN   -run pattern (default: every test of the suite)
#   SUITE_LOG   where the go test output goes (default: a temporary file)
#   GO          the go command (default: go)
# Image variables (MCPSTREAM_IMAGE, BROKER_IMAGE, POSTGRES_IMAGE, ...) are
# passed through; see README.md beside this file.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
GO="${GO:-go}"
run="${SUITE_RUN:-.}"
logf="${SUITE_LOG:-$(mktemp -t mcpstream-containers.XXXXXX)}"
export TESTCONTAINERS_RYUK_DISABLED="${TESTCONTAINERS_RYUK_DISABLED:-true}"
log() { echo "containers/run.sh: $*" >&2; }

t0=$SECONDS
# Containers and networks that an interrupted earlier run left behind (the
# reaper is off): only stopped ones and unused networks, never a container
# that runs (another run may own it).
docker ps -aq --filter label=org.testcontainers=true --filter status=exited --filter status=created 2>/dev/null \
  | xargs -r docker rm -f >/dev/null 2>&1 || true
docker network prune -f --filter label=org.testcontainers=true >/dev/null 2>&1 || true

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  bash ops/images/build.sh
fi
t1=$SECONDS

# What must run: the suite's tests matching the pattern.
mapfile -t want < <($GO test -tags containers -list "$run" ./integration/containers/ | grep '^Test' || true)
if [ "${#want[@]}" = 0 ]; then
  log "no test of the suite matches -run '$run'"
  exit 1
fi
log "running ${#want[@]} tests: ${want[*]} (output: $logf)"

rc=0
$GO test -race -tags containers -count=1 -timeout "${SUITE_TIMEOUT:-40m}" -run "$run" -v ./integration/containers/ 2>&1 | tee "$logf" || rc=$?
t2=$SECONDS

# Each wanted test must have passed; none skipped; none missing.
missing=()
for t in "${want[@]}"; do
  if ! grep -qE "^--- PASS: $t \(" "$logf"; then
    missing+=("$t:$(grep -oE "^--- (FAIL|SKIP): $t " "$logf" | awk '{print $2}' | tr -d : || true)")
  fi
done
skipped=$(grep -cE '^ *--- SKIP' "$logf" || true)
log "images $((t1 - t0)) s, suite $((t2 - t1)) s; go test exit $rc; per test:"
grep -E '^--- (PASS|FAIL|SKIP): Test' "$logf" | sed 's/^/    /' >&2 || true
passed=$((${#want[@]} - ${#missing[@]}))
if [ "$rc" != 0 ] || [ "${#missing[@]}" != 0 ] || [ "$skipped" != 0 ]; then
  log "FAILED: did not pass: ${missing[*]:-none}; skipped: $skipped; go test exit $rc"
  echo "containers: $passed passed, ${#missing[@]} failed"
  exit 1
fi
echo "containers: $passed passed, 0 failed"
