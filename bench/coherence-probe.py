#!/usr/bin/env python3
"""How long a change made on the slave side takes to show through the mount.

Usage: coherence-probe.py MOUNT_DIR SLAVE_DIR CHANGES DEADLINE_S BUDGET_S SLOW_S

MOUNT_DIR is SLAVE_DIR seen through the mount. Each change: stat the file through the mount (so
the mount holds the old state, as a test that looked at it would), rewrite it in place in
SLAVE_DIR with one byte more than before, then stat it through the mount every millisecond until
it shows the new size, at most DEADLINE_S. Stops after CHANGES changes, once BUDGET_S seconds
have gone by, or when each of the first five changes took over SLOW_S seconds (a cache that
long would make the run take hours). Prints `wait MICROSECONDS` per change seen, `timeout` per
change not seen in time, and `stop REASON` if it stopped early.
"""
import os
import sys
import time

POLL_S = 0.001
SLOW_SAMPLE = 5
BASE_SIZE = 100


def rewrite(path, size):
    """What a process on the slave does: truncate and write, in place (same inode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"x" * size)
    finally:
        os.close(fd)


def wait_for_size(path, size, deadline_s):
    """Nanoseconds until stat(path) shows `size`, or None past the deadline."""
    started = time.perf_counter_ns()
    limit = started + int(deadline_s * 1e9)
    while True:
        try:
            seen = os.stat(path).st_size
        except FileNotFoundError:
            seen = None
        now = time.perf_counter_ns()
        if seen == size:
            return now - started
        if now > limit:
            return None
        time.sleep(POLL_S)


def main():
    mount_dir, slave_dir = sys.argv[1], sys.argv[2]
    changes, deadline_s, budget_s, slow_s = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
    name = f"coherence-{os.getpid()}"
    slave_file, mount_file = os.path.join(slave_dir, name), os.path.join(mount_dir, name)
    rewrite(slave_file, BASE_SIZE)
    try:
        if wait_for_size(mount_file, BASE_SIZE, deadline_s) is None:
            print(f"stop the new file never showed through the mount in {deadline_s:g} s", flush=True)
            return
        ends = time.monotonic() + budget_s
        slow = 0
        for i in range(1, changes + 1):
            os.stat(mount_file)
            rewrite(slave_file, BASE_SIZE + i)
            waited = wait_for_size(mount_file, BASE_SIZE + i, deadline_s)
            print("timeout" if waited is None else f"wait {waited / 1000:.1f}", flush=True)
            if waited is None or waited > slow_s * 1e9:
                slow += 1
            if i == SLOW_SAMPLE and slow == SLOW_SAMPLE:
                print(f"stop the first {SLOW_SAMPLE} changes each took over {slow_s:g} s", flush=True)
                return
            if i < changes and time.monotonic() > ends:
                print(f"stop the {budget_s:g} s budget ran out", flush=True)
                return
    finally:
        os.unlink(slave_file)


main()
