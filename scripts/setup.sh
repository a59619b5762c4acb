#!/usr/bin/env bash
# Installs everything splitbrain needs on a Debian 12 machine and builds it. Idempotent: a
# second run checks and does nothing it need not do. Run as root (apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages. libfuse3-dev, pkg-config: our FUSE binding (mount/native/) is built against
# them. fuse3: fusermount3 and libfuse3 (Debian's `fuse`
# package would conflict with sshfs). sshfs, bindfs, openssh-server: the benchmarks' references.
# socat: pty pairs in the device tests. gcc, libc6-dev (its static libc): the exec shim and the
# agent's change watcher (agent/backends/linux/watcher), both linked statically. bsdutils: `script`, a terminal for the pty tests.
# python3-serial, python3-pexpect, picocom, tmux: unmodified serial-console tools in the terminal
# tests (test/integration/terminals.test.ts), run with Debian's /usr/bin/python3. python3-pytest:
# the example tests run on this machine through `splitbrain shell` (test/e2e/containers.test.ts).
# iproute2 (`ss -K`) and iptables: a device link cut, and one gone silent, in their tests
# (test/integration/device-links.test.ts; the rules drop only the link's port on loopback).
# util-linux (unshare, setpriv) and hostname, which `splitbrain shell` runs, are essential packages.
packages=(nats-server fuse3 libfuse3-dev pkg-config sshfs bindfs openssh-server openssh-client socat rsync git
          python3 make g++ gcc libc6-dev bsdutils ca-certificates openssl python3-serial python3-pexpect picocom tmux
          python3-pytest iproute2 iptables)
bash scripts/apt-ensure.sh setup "${packages[@]}"
[ -c /dev/fuse ] || { echo "setup: /dev/fuse is missing: load the fuse module (modprobe fuse)" >&2; exit 1; }

# Node packages, exactly as locked.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# Patched dependencies and node-pty's binding (see scripts/patch-deps.sh).
bash scripts/patch-deps.sh

npm run --silent build
