#!/usr/bin/env python3
"""Times stat + create + unlink at the end of a path DEPTH directories deep, as whoever runs it.

Usage: caller-calls.py BASE DEPTH ROUNDS. Prints milliseconds per round (the three calls). The
tree is made (by the caller) on first use and left for the next run.
"""
import os
import sys
import time

base, depth, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
path = os.path.join(base, f"d{depth}", *(["x"] * (depth - 1)))
os.makedirs(path, exist_ok=True)
name = os.path.join(path, "f")
started = time.perf_counter()
for _ in range(rounds):
    try:
        os.stat(name)
    except FileNotFoundError:
        pass
    os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o644))
    os.unlink(name)
print(f"{(time.perf_counter() - started) / rounds * 1000:.4f}")
