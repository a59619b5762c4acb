#!/usr/bin/env bash
# The main job on this one machine: installs and builds splitbrain and its images, starts a
# simulated lab slave as a container of its own (hostname slave-1, its own root filesystem, a
# board console, NATS and the agent) on an internal Docker network, and runs the example test
# image, which knows nothing of splitbrain, against it with `splitbrain run`. Leaves nothing
# behind. Without a Docker engine it says why and runs the loopback demo instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

why=""
if ! bash scripts/docker-setup.sh; then
  why="no Docker engine can run here (see above)"
elif ! bash scripts/build-images.sh; then
  why="the images could not be built (see above)"
fi
if [ -n "$why" ]; then
  echo "demo: $why; running the loopback demo instead (agent, NATS, mount and bridge as processes)" >&2
  exec bash scripts/demo-loopback.sh
fi

id=splitbrain-demo-$$
network=$id-lab
slave=$id-slave
cleanup() {
  docker rm -f -v "$slave" >/dev/null 2>&1 || true
  docker network rm "$network" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# The lab: an internal network (nothing in it reaches out, nothing is published) and the slave.
docker network create --internal "$network" >/dev/null
docker run -d --init --name "$slave" --hostname slave-1 --network "$network" --network-alias slave-1 \
  splitbrain/example-slave:local >/dev/null
for _ in $(seq 120); do docker logs "$slave" 2>&1 | grep -q 'agent serving' && break; sleep 0.25; done
docker logs "$slave" 2>&1 | grep -q 'agent serving' || { echo "demo: the slave's agent did not start:" >&2; docker logs "$slave" >&2; exit 1; }
echo "== slave container $slave (hostname slave-1) serves nats://slave-1:4222 on network $network"

echo "== splitbrain run --slave nats://slave-1:4222 splitbrain/example-tests:local"
node dist/cli/main.js run --slave nats://slave-1:4222 --network "$network" --command hostname --command cat \
  splitbrain/example-tests:local
echo "== on the slave, the test left /tmp/written-by-test.txt:"
docker exec "$slave" cat /tmp/written-by-test.txt
echo "== the same with compose: SLAVE=nats://slave-1:4222 TEST_IMAGE=splitbrain/example-tests:local NETWORK_MODE=$network ..."
echo "   docker compose -f compose/docker-compose.yml up --exit-code-from test   (docs/deployment.md)"
echo "== demo passed"
