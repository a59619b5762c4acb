#!/usr/bin/env bash
# Makes this Debian machine able to run splitbrain's containers, idempotently: Debian's Docker
# engine and compose (docker.io, docker-compose), debootstrap (the local base image, see
# scripts/build-images.sh), a running dockerd (started by hand where no init system runs it),
# and a shared mount for the directories the sidecar shares with test containers (rshared
# propagation needs a shared source mount; most hosts' / is, this machine's is private).
# Prints nothing on success when everything is already there. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(docker.io docker-compose debootstrap)
bash scripts/apt-ensure.sh docker-setup "${packages[@]}"

# The engine: the one that runs, else systemd's, else dockerd started by hand (its log in
# /var/log/splitbrain-dockerd.log; it keeps running after this script, as a service would).
if ! docker info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ]; then
    systemctl start docker
  else
    echo "docker-setup: starting dockerd (log: /var/log/splitbrain-dockerd.log)" >&2
    nohup dockerd >>/var/log/splitbrain-dockerd.log 2>&1 </dev/null &
  fi
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "docker-setup: the Docker engine did not start:" >&2; tail -20 /var/log/splitbrain-dockerd.log >&2 || true; exit 1; }
fi

# Mount propagation, which Docker's rshared/rslave binds need from the source's mount: the
# slave-side agent container (compose/slave.yml) binds the host's / with rslave, so / must be
# shared, as systemd makes it on boot; where no systemd did, we do.
[ "$(findmnt -n -o PROPAGATION --mountpoint /)" = private ] && mount --make-rshared /
# Where sidecars share their mounts with test containers: a shared mount of its own, so that
# propagation works even where / is shared with a peer we would rather not reach.
share=${SPLITBRAIN_SHARE:-/run/splitbrain}
mkdir -p "$share"
if ! findmnt -n -o TARGET --mountpoint "$share" >/dev/null; then
  mount --bind "$share" "$share"
fi
[ "$(findmnt -n -o PROPAGATION --mountpoint "$share")" = shared ] || mount --make-shared "$share"
# compose/docker-compose.yml's default SPLITBRAIN_DIR (bind sources must exist before `up`).
mkdir -p "$share/default/slave"
