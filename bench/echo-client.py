#!/usr/bin/env python3
"""The device bench's timed side, run as `echo-client.py OUT ROUNDS WARM_UP COLD ID=WHERE...`.

WHERE is a terminal's path (opened read-write, directly or through a device mount) or
`tcp:PORT` (a connection to 127.0.0.1:PORT). Each round trip writes one byte and reads one byte
back, timed around the two calls alone. The routes run one after the other, each with WARM_UP
untimed rounds first: interleaved round by round, the work a route's servers do after each echo
(splitbrain's Node processes) ran into the next route's round trip and made the pty alone
several times slower. With the default rounds each route takes about a second, so load on the
machine hardly differs between them. The first COLD of the untimed rounds are kept apart: a
route's figure while its processes are new.

Writes `{"ID": {"samples_us": [...], "cold_us": [...], "failure": null or why}}` to OUT and exits 0, or 3 when a
round trip had no echo within ROUND_TIMEOUT_S: a read through FUSE cannot be interrupted short
of killing us, so a watchdog thread writes what was measured so far and ends the process.
"""
import json
import os
import socket
import sys
import threading
import time

ROUND_TIMEOUT_S = 10


class Route:
    def __init__(self, route_id, where):
        self.id, self.samples_us, self.cold_us, self.failure, self.close = route_id, [], [], None, lambda: None
        try:
            self.open(where)
        except OSError as err:
            self.failure = f"cannot open {where}: {err.strerror or err}"

    def open(self, where):
        if where.startswith("tcp:"):
            sock = socket.create_connection(("127.0.0.1", int(where[4:])), timeout=ROUND_TIMEOUT_S)
            # Blocking with no timeout of its own, as the terminals are (a timeout would add a
            # poll to every read): the watchdog bounds every route alike. One byte per write:
            # Nagle's algorithm must not hold it back.
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.send, self.recv, self.close = sock.sendall, lambda: sock.recv(1), sock.close
        else:
            fd = os.open(where, os.O_RDWR | os.O_NOCTTY)
            self.send, self.recv, self.close = (lambda b: os.write(fd, b)), (lambda: os.read(fd, 1)), (lambda: os.close(fd))


out_path, rounds, warm_up, cold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
routes = [Route(*arg.split("=", 1)) for arg in sys.argv[5:]]


def write_results():
    results = {r.id: {"samples_us": r.samples_us, "cold_us": r.cold_us, "failure": r.failure} for r in routes}
    with open(out_path, "w") as out:
        json.dump(results, out)


# (route, round, monotonic start) of the round trip in progress, or None between them.
current = None


def watchdog():
    while True:
        time.sleep(1)
        now = current
        if now is not None and time.monotonic() - now[2] > ROUND_TIMEOUT_S:
            now[0].failure = f"round trip {now[1]}: no echo within {ROUND_TIMEOUT_S} s"
            for later in routes[routes.index(now[0]) + 1:]:
                later.failure = later.failure or f"not run: the client stopped on {now[0].id}"
            write_results()
            os._exit(3)


threading.Thread(target=watchdog, daemon=True).start()
perf = time.perf_counter_ns
for route in routes:
    for i in range(warm_up + rounds):
        if route.failure is not None:
            break
        # Letters only: nothing a terminal could take for a control character, and a stale or
        # lost byte shows as a mismatch.
        byte = bytes([97 + i % 26])
        current = (route, i + 1, time.monotonic())
        try:
            t0 = perf()
            route.send(byte)
            got = route.recv()
            t1 = perf()
        except OSError as err:
            route.failure = f"round trip {i + 1}: {err.strerror or err}"
            continue
        finally:
            current = None
        if got == b"":
            route.failure = f"round trip {i + 1}: end of file"
        elif got != byte:
            route.failure = f"round trip {i + 1}: sent {byte!r}, got {got!r}"
        elif i >= warm_up:
            route.samples_us.append((t1 - t0) / 1000)
        elif i < cold:
            route.cold_us.append((t1 - t0) / 1000)

for route in routes:
    route.close()
write_results()
