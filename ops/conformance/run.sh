#!/usr/bin/env bash
# Runs the official MCP conformance suite (server side) against a running
# server, using the pinned suite and Node 22 that install.sh provides.
#
# Usage:
#   ops/conformance/run.sh URL REQUIREMENTS [extra conformance args...]
#
#   URL           the MCP endpoint, e.g. http://127.0.0.1:8080/mcp
#                 (dns-rebinding-protection fails on anything but
#                 localhost / 127.0.0.1 / [::1]).
#   REQUIREMENTS  a spec revision (2025-11-25 or 2026-07-28) to run the frozen
#                 requirement set of that revision, or "-" to pass no
#                 --requirements (needed with --scenario: the CLI refuses to
#                 combine the two; use --spec-version to pick the wire).
#
# Examples:
#   run.sh http://127.0.0.1:8080/mcp 2025-11-25
#   run.sh http://127.0.0.1:8080/mcp 2026-07-28 -o /tmp/results
#   run.sh http://127.0.0.1:8080/mcp - --scenario tools-call-with-progress --spec-version 2025-11-25
#
# Exit status is the suite's: 0 when no scored check has status FAILURE,
# 1 otherwise (WARNING never fails a run). With -o DIR every scenario writes
# DIR/server-<scenario>-<timestamp>/checks.json for machine parsing.
#
# Environment: CONFORMANCE_DIR overrides the install directory
# (default <repo>/.cache/conformance); the install runs first and is a no-op
# when the pinned versions are already present.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,24p' "$0" >&2
  exit 2
fi

url="$1"
requirements="$2"
shift 2

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
dir="${CONFORMANCE_DIR:-$repo_root/.cache/conformance}"

# install.sh prints NODE=... and CONFORMANCE=...; npm chatter goes to stderr.
paths="$("$here/install.sh" "$dir")"
node_bin="$(sed -n 's/^NODE=//p' <<<"$paths")"
entry="$(sed -n 's/^CONFORMANCE=//p' <<<"$paths")"

args=(server --url "$url")
if [[ "$requirements" != "-" ]]; then
  args+=(--requirements "$requirements")
fi

# NO_COLOR/FORCE_COLOR do not affect the suite's own ANSI codes, but keep
# child tooling quiet in CI logs.
exec "$node_bin" "$entry" "${args[@]}" "$@"
