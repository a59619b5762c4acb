#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then type-check, lint, unit
# and integration tests (real nats-server, agent processes and FUSE mounts on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm test
