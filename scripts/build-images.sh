#!/usr/bin/env bash
# Builds splitbrain's images from compose/*.Dockerfile with what this machine already built
# (dist/ and node_modules/ from scripts/setup.sh): nothing is fetched from the npm registry
# inside a container. Idempotent: Docker's layer cache makes a second run quick.
#
#   BASE_IMAGE   the image both are built on. Default: node:20-bookworm-slim when the engine
#                has it; otherwise (no registry, as on the lab's offline machines and our CI)
#                a local Debian bookworm base made with debootstrap, plus this machine's node.
#   TAG          the images' tag (default: local).
#
# Makes splitbrain/sidecar:$TAG, splitbrain/agent:$TAG, splitbrain/nats:$TAG (Debian's
# nats-server, for machines that cannot pull the official image), and the example images under
# compose/example/ (the test image and a simulated slave) tagged splitbrain/example-*:$TAG.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${TAG:-local}
LOCAL_BASE=splitbrain/local-base:bookworm

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

if [ -z "${BASE_IMAGE:-}" ]; then
  if have_image node:20-bookworm-slim; then
    BASE_IMAGE=node:20-bookworm-slim
  else
    BASE_IMAGE=$LOCAL_BASE
    if ! have_image "$LOCAL_BASE"; then
      # A minimal Debian root filesystem, imported as an image, with this machine's Node where
      # the official image has it (/usr/local/bin/node). Debian's mirror stays in its apt
      # sources: the Dockerfiles install packages from it.
      echo "build-images: making $LOCAL_BASE with debootstrap (about 30 s)" >&2
      rootfs=$(mktemp -d /tmp/splitbrain-rootfs.XXXXXX)
      trap 'rm -rf "$rootfs"' EXIT
      debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$rootfs.log" 2>&1 \
        || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
      rm -f "$rootfs.log"
      install -m 755 "$(command -v node)" "$rootfs/usr/local/bin/node"
      rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
      tar -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' - "$LOCAL_BASE" >/dev/null
      rm -rf "$rootfs"
      trap - EXIT
    fi
  fi
fi

# The build context: the compiled project with its production dependencies only (native
# bindings included, built against this machine's Node; both are N-API, so they load in any
# Node >= 20 on glibc).
context=.build/image
rm -rf "$context"
mkdir -p "$context"
cp package.json package-lock.json "$context/"
mkdir -p "$context/dist"
for d in protocol transport agent mount native sidecar compose cli shim; do
  [ -e "dist/$d" ] && cp -a "dist/$d" "$context/dist/"
done
cp -a node_modules "$context/"
(cd "$context" && npm prune --omit=dev --no-audit --no-fund >/dev/null 2>&1)
# Build intermediates of the native bindings are not needed at run time.
find "$context/node_modules" -path '*/build/Release/obj.target' -prune -exec rm -rf {} + 2>/dev/null || true
cp -a compose/entrypoints "$context/" 2>/dev/null || true

build() { # <name> <Dockerfile> [context]: quiet unless it fails
  echo "build-images: splitbrain/$1:$TAG (on $BASE_IMAGE)" >&2
  local log
  log=$(mktemp)
  if ! docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "TAG=$TAG" -t "splitbrain/$1:$TAG" \
      -f "$2" "${3:-$context}" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "build-images: building splitbrain/$1:$TAG failed" >&2
    exit 1
  fi
  rm -f "$log"
}
build sidecar compose/sidecar.Dockerfile
build agent compose/agent.Dockerfile
build nats compose/nats.Dockerfile compose
build example-slave compose/example/slave.Dockerfile compose/example
build example-tests compose/example/tests.Dockerfile compose/example
build example-tests-user compose/example/tests-user.Dockerfile compose/example
