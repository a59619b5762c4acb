#!/bin/sh
# The simulated slave: a NATS server for its lab bus, the board console, and the agent serving
# this container's own root filesystem, processes and devices (as a real slave's agent would).
set -e
nats-server -a 0.0.0.0 -p 4222 &
python3 /usr/local/lib/board.py &
for _ in $(seq 50); do [ -e /dev/ttyBOARD ] && break; sleep 0.1; done
exec splitbrain agent --nats nats://127.0.0.1:4222 --log-level "${LOG_LEVEL:-info}"
