#!/usr/bin/env bash
# Applies splitbrain's patches to its dependencies and builds fuse-native's binding from
# source. Idempotent. The patches are small and explained in the files that depend on them:
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

pkg=node_modules/fuse-native
if [ ! -f "$pkg/build/Release/fuse.node" ] || [ "$pkg/fuse-native.c" -nt "$pkg/build/Release/fuse.node" ]; then
  # Build against the headers of the Node that runs us; never download any.
  nodedir=$(dirname "$(dirname "$(command -v node)")")
  [ -f "$nodedir/include/node/node_api.h" ] || nodedir=/usr
  log=$(mktemp)
  if ! (cd "$pkg" && npx --no-install node-gyp rebuild --nodedir="$nodedir") >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "patch-deps: building fuse-native failed" >&2
    exit 1
  fi
  rm -f "$log"
fi
