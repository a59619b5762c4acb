#!/usr/bin/env bash
# Applies our patch to fuse-native and builds its binding from source. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=node_modules/fuse-native
if ! grep -q 'splitbrain:' "$pkg/fuse-native.c"; then
  # With no package named, patch-package applies every patch in the directory.
  npx --no-install patch-package --patch-dir mount/patches --error-on-fail >/dev/null
fi
if [ ! -f "$pkg/build/Release/fuse.node" ] || [ "$pkg/fuse-native.c" -nt "$pkg/build/Release/fuse.node" ]; then
  # Build against the headers of the Node that runs us; never download any.
  nodedir=$(dirname "$(dirname "$(command -v node)")")
  [ -f "$nodedir/include/node/node_api.h" ] || nodedir=/usr
  log=$(mktemp)
  if ! (cd "$pkg" && npx --no-install node-gyp rebuild --nodedir="$nodedir") >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "build-native: building fuse-native failed" >&2
    exit 1
  fi
  rm -f "$log"
fi
