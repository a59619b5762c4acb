#!/usr/bin/env bash
# Applies splitbrain's patches to its dependencies and builds the native bindings npm does not
# build for us (npm runs no install scripts unless approved): fuse-native's and node-pty's
# (node-pty ships prebuilt binaries for macOS and Windows only). Idempotent. The patches are small and explained in the files that depend on them:
#   mount/patches/      fuse-native (see mount/fuse-adapter.ts)
#   transport/patches/  nats.js (see transport/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."

apply() { # <patch dir> <patched file>: patch-package applies every patch in the directory
  if ! grep -q 'splitbrain:' "$2"; then
    npx --no-install patch-package --patch-dir "$1" --error-on-fail >/dev/null
  fi
}
apply mount/patches node_modules/fuse-native/fuse-native.c
apply transport/patches node_modules/nats/lib/nats-base-client/parser.js

# build <package dir> <binary it makes>: node-gyp against the headers of the Node that runs us;
# never downloads any. Rebuilds when the binary is missing or older than a patched source.
build() {
  local pkg=$1 binary=$2
  if [ -f "$pkg/$binary" ] && [ -z "$(find "$pkg" -maxdepth 2 -name '*.c*' -newer "$pkg/$binary" -print -quit)" ]; then
    return
  fi
  local nodedir log
  nodedir=$(dirname "$(dirname "$(command -v node)")")
  [ -f "$nodedir/include/node/node_api.h" ] || nodedir=/usr
  log=$(mktemp)
  if ! (cd "$pkg" && npx --no-install node-gyp rebuild --nodedir="$nodedir") >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "patch-deps: building $pkg failed" >&2
    exit 1
  fi
  rm -f "$log"
}
build node_modules/fuse-native build/Release/fuse.node
build node_modules/node-pty build/Release/pty.node
