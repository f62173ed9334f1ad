#!/usr/bin/env bash
# Installs the official MCP reference server @modelcontextprotocol/server-everything
# (pinned) into a private directory, for the federation tests of tools/upstream
# and for anyone who wants a real upstream to point mcpstream at.
#
# Usage: ops/upstreams/install.sh [DIR]   (default: <repo>/.cache/upstreams)
# Prints three lines:
#   NODE=<path to a node >= 18>
#   EVERYTHING=<path to server-everything's CLI entry (dist/index.js)>
#   LOOPBACK=<path to loopback.cjs, a preload that binds its HTTP mode to 127.0.0.1>
# Run the server with:  $NODE $EVERYTHING            (stdio)
#                       PORT=3001 $NODE --require $LOOPBACK $EVERYTHING streamableHttp
# Safe to run repeatedly: npm runs only when the pinned version is missing.
set -euo pipefail

EVERYTHING_VERSION="2026.8.31"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
dir="${1:-$repo_root/.cache/upstreams}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

# server-everything runs on the machine's Node (20 here); the conformance
# suite's private Node 22 is not needed. Require >= 18 (its SDK's floor).
node_bin="$(command -v node || true)"
if [[ -z "$node_bin" ]]; then
  echo "install.sh: node not found on PATH (install nodejs and npm)" >&2
  exit 1
fi
node_major="$("$node_bin" -p 'process.versions.node.split(".")[0]')"
if (( node_major < 18 )); then
  echo "install.sh: node $("$node_bin" --version) is too old; server-everything needs >= 18" >&2
  exit 1
fi

pkg_dir="$dir/node_modules/@modelcontextprotocol/server-everything"

# Writing package.json every time keeps the pin here the single source of
# truth; npm then only re-resolves when the pin changed.
cat >"$dir/package.json" <<JSON
{
  "name": "mcpstream-upstreams",
  "private": true,
  "description": "Pinned MCP reference servers used as upstreams by mcpstream's federation tests",
  "dependencies": {
    "@modelcontextprotocol/server-everything": "$EVERYTHING_VERSION"
  }
}
JSON

installed_version() {
  sed -n 's/^[[:space:]]*"version"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$1" 2>/dev/null | head -n1
}

if [[ "$(installed_version "$pkg_dir/package.json")" != "$EVERYTHING_VERSION" ]]; then
  if ! command -v npm >/dev/null; then
    echo "install.sh: npm not found on PATH; it is needed once to install @modelcontextprotocol/server-everything@$EVERYTHING_VERSION" >&2
    exit 1
  fi
  # --no-audit/--no-fund: only the registry is needed; avoid extra calls.
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error >&2)
fi

have="$(installed_version "$pkg_dir/package.json")"
if [[ "$have" != "$EVERYTHING_VERSION" ]]; then
  echo "install.sh: expected server-everything $EVERYTHING_VERSION in $pkg_dir, found '${have:-nothing}'" >&2
  exit 1
fi

# The entry is whatever package.json "bin" maps the CLI to; resolving it with
# node avoids guessing the dist layout of a future version.
entry="$("$node_bin" -e '
  const path = require("path");
  const dir = process.argv[1];
  const pkg = require(path.join(dir, "package.json"));
  const bin = typeof pkg.bin === "string" ? pkg.bin : (pkg.bin["mcp-server-everything"] || Object.values(pkg.bin)[0]);
  console.log(path.resolve(dir, bin));
' "$pkg_dir")"
if [[ ! -f "$entry" ]]; then
  echo "install.sh: server-everything entry point missing at $entry" >&2
  exit 1
fi

echo "NODE=$node_bin"
echo "EVERYTHING=$entry"
echo "LOOPBACK=$here/loopback.cjs"
