#!/usr/bin/env bash
# The main job without Docker, all on loopback (scripts/demo.sh falls back to it): installs and
# builds splitbrain, starts a nats-server and an agent exporting a demo "slave" directory,
# mounts it like sshfs would, starts the spawn bridge with a shim directory, and runs an
# unmodified example test against the mount and the slave's commands. Leaves nothing running
# or mounted.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

work=$(mktemp -d /tmp/splitbrain-demo.XXXXXX)
slave_root="$work/slave"
mountpoint="$work/mnt"
mkdir -p "$slave_root/etc" "$slave_root/var/log" "$slave_root/usr/bin" "$mountpoint"
echo "demo-slave" > "$slave_root/etc/hostname"
printf 'boot ok\nsensor 21.5C\n' > "$slave_root/var/log/board.log"
# A command only the slave has (on the agent's PATH below), as a lab board's tools would be.
cat > "$slave_root/usr/bin/board-status" <<'SCRIPT'
#!/bin/sh
[ "$1" = --fail ] && { echo "board-status: sensor bus error" >&2; exit 3; }
tail -n 1 var/log/board.log
SCRIPT
chmod 755 "$slave_root/usr/bin/board-status"

pids=()
cleanup() {
  if grep -q " $mountpoint fuse" /proc/mounts; then node dist/cli/main.js umount "$mountpoint" || fusermount -uz "$mountpoint"; fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$work"
}
trap cleanup EXIT

# A nats-server on a free loopback port (it prints the port it chose).
nats-server -a 127.0.0.1 -p -1 >"$work/nats.log" 2>&1 &
pids+=($!)
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/.*Listening for client connections on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/nats.log")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "demo: nats-server did not start" >&2; cat "$work/nats.log" >&2; exit 1; }
url="nats://127.0.0.1:$port"
echo "== nats-server on $url"

PATH="$slave_root/usr/bin:$PATH" node --initial-old-space-size=64 --v8-pool-size=1 dist/cli/main.js agent --nats "$url" --id demo-slave --root "$slave_root" --log-level info 2>"$work/agent.log" &
pids+=($!)
for _ in $(seq 100); do grep -q 'agent serving' "$work/agent.log" && break; sleep 0.1; done
grep -q 'agent serving' "$work/agent.log" || { echo "demo: agent did not start" >&2; cat "$work/agent.log" >&2; exit 1; }
echo "== agent 'demo-slave' exports $slave_root"

node dist/cli/main.js mount "$url" "$mountpoint"
echo "== mounted on $mountpoint:"
grep " $mountpoint " /proc/mounts

node dist/cli/main.js bridge "$url" --agent demo-slave --socket "$work/bridge.sock" --shim-dir "$work/bin" \
  --command board-status --command uname --slave-mount "$mountpoint" --log-level info 2>"$work/bridge.log" &
pids+=($!)
for _ in $(seq 100); do grep -q 'bridge serving' "$work/bridge.log" && break; sleep 0.1; done
grep -q 'bridge serving' "$work/bridge.log" || { echo "demo: bridge did not start" >&2; cat "$work/bridge.log" >&2; exit 1; }
echo "== bridge on $work/bridge.sock; the slave's commands in $work/bin:"
ls "$work/bin"

echo "== running the example test (it knows nothing of splitbrain)"
SLAVE="$mountpoint" PATH="$work/bin:$PATH" SPLITBRAIN_BRIDGE_SOCKET="$work/bridge.sock" \
  python3 test/fixtures/example-test.py
echo "== on the slave side, the test left:"
ls -l "$slave_root/tmp"
echo "== demo passed"
