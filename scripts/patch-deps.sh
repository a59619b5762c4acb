#!/usr/bin/env bash
# Applies splitbrain's patches to its dependencies and builds the native bindings npm does not
# build for us (npm runs no install scripts unless approved): node-pty's
# (node-pty ships prebuilt binaries for macOS and Windows only). Idempotent. The patches are small and explained in the files that depend on them:
#   transport/patches/  nats.js (see transport/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."

# apply <patch dir>: patch-package applies every patch in the directory. A stamp in each package
# records the patch it carries: a package patched by an older version of the patch is first
# restored from its published tarball (npm's cache), since a patch applies only to the original.
apply() {
  local patch name version pkg want
  for patch in "$1"/*.patch; do
    name=$(basename "$patch" .patch); version=${name##*+}; name=${name%+*}
    pkg=node_modules/$name
    want=$(sha256sum "$patch" | cut -d' ' -f1)
    [ "$(cat "$pkg/.splitbrain-patch" 2>/dev/null)" = "$want" ] && continue
    if grep -rqs --include='*.js' --include='*.c' 'splitbrain:' "$pkg"; then
      local tmp
      tmp=$(mktemp -d)
      (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null && tar -xzf ./*.tgz)
      cp -r "$tmp/package/." "$pkg/"
      rm -rf "$tmp"
    fi
    npx --no-install patch-package --patch-dir "$1" --error-on-fail >/dev/null
    echo "$want" > "$pkg/.splitbrain-patch"
  done
}
apply transport/patches

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
build node_modules/node-pty build/Release/pty.node
