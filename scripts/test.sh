#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then type-check, lint, unit,
# integration (real nats-server, agent processes and FUSE mounts on loopback) and end-to-end
# tests (a real Docker engine, the project's images built locally).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/docker-setup.sh
bash scripts/build-images.sh
npm test
