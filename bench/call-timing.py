#!/usr/bin/env python3
"""Times single filesystem calls under BASE, each call on its own, in this one process.

Usage:
  call-timing.py calls BASE ITERATIONS BUDGET_S
  call-timing.py depths BASE ITERATIONS BUDGET_S DEPTH...
  call-timing.py cpu BASE ITERATIONS BUDGET_S CALL

`calls`: stat of a known file, stat of a missing name, create + close (O_CREAT|O_EXCL, a fresh
name each time), write 4 KiB + close (O_TRUNC, one of those files each time), chmod, unlink,
mkdir, rmdir, at depth 1. `depths`: stat of a known file, create + close of a fresh name and its
unlink at the end of a chain of DEPTH directories. Untimed rounds first (CALL_TIMING_WARM_UP in the
environment, default 20); each loop stops early once it has run BUDGET_S seconds. Prints one line
per call, `KEY COUNT MEDIAN_US`, and makes and removes its own directory under BASE.

`cpu`: one call (`create` or `write-4k`, as `calls` makes them) in a loop, for the CPU it costs
each process: after its files are made and the untimed calls, prints `ready` and waits for a
line on stdin (whoever measures the other processes reads their CPU then), runs the loop, prints
`cpu CALL COUNT WALL_US CPU_US` (the wall time and this process's own CPU time, user and system,
per call, both the mean over the loop) and waits for another line before removing its files.
"""
import os
import shutil
import statistics
import sys
import time

# Untimed rounds before the timed ones: enough for a server that compiles its hot paths as it
# runs (the splitbrain mount, V8) to be timed as a long-running one is, not while compiling them.
WARM_UP = int(os.environ.get("CALL_TIMING_WARM_UP", "20"))
BLOCK = b"\0" * 4096


def timed(call, count, budget_s):
    """Nanoseconds of each call(i) for i in range(count), stopping early past the budget."""
    samples = []
    deadline = time.monotonic() + budget_s
    for i in range(count):
        started = time.perf_counter_ns()
        call(i)
        samples.append(time.perf_counter_ns() - started)
        if time.monotonic() > deadline:
            break
    return samples


def report(key, samples):
    print(f"{key} {len(samples)} {statistics.median(samples) / 1000:.3f}", flush=True)


def stat_missing(path):
    try:
        os.stat(path)
    except FileNotFoundError:
        return
    raise RuntimeError(f"{path} exists")


def create(path):
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))


def write_4k(path):
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, BLOCK)
    finally:
        os.close(fd)


def calls(work, count, budget_s):
    known = os.path.join(work, "known")
    warm = os.path.join(work, "warm")
    create(known)
    write_4k(known)
    missing = os.path.join(work, "missing")

    def name(prefix, i):
        return os.path.join(work, f"{prefix}{i}")

    for i in range(WARM_UP):  # every call once per round, on names the timed loops do not use
        os.stat(known)
        stat_missing(missing)
        create(warm)
        write_4k(warm)
        os.chmod(warm, 0o600)
        os.unlink(warm)
        os.mkdir(warm)
        os.rmdir(warm)
    report("stat-known", timed(lambda i: os.stat(known), count, budget_s))
    report("stat-missing", timed(lambda i: stat_missing(missing), count, budget_s))
    created = timed(lambda i: create(name("c", i)), count, budget_s)
    report("create", created)
    files = len(created)  # the loops below use the files made, no more
    report("write-4k", timed(lambda i: write_4k(name("c", i)), files, budget_s))
    report("chmod", timed(lambda i: os.chmod(name("c", i), 0o600), files, budget_s))
    report("unlink", timed(lambda i: os.unlink(name("c", i)), files, budget_s))
    made = timed(lambda i: os.mkdir(name("m", i)), count, budget_s)
    report("mkdir", made)
    report("rmdir", timed(lambda i: os.rmdir(name("m", i)), len(made), budget_s))


def depths(work, count, budget_s, depth_list):
    for depth in depth_list:
        chain = os.path.join(work, f"d{depth}", *(["x"] * (depth - 1)))
        os.makedirs(chain)
        known = os.path.join(chain, "known")
        create(known)
        stats, creates, unlinks, rounds = [], [], [], []

        def one_round(i, record=True):
            fresh = os.path.join(chain, f"f{i}")
            t0 = time.perf_counter_ns()
            os.stat(known)
            t1 = time.perf_counter_ns()
            create(fresh)
            t2 = time.perf_counter_ns()
            os.unlink(fresh)
            t3 = time.perf_counter_ns()
            if record:
                stats.append(t1 - t0)
                creates.append(t2 - t1)
                unlinks.append(t3 - t2)
                rounds.append(t3 - t0)

        for i in range(WARM_UP):
            one_round(count + i, record=False)
        deadline = time.monotonic() + budget_s
        for i in range(count):
            one_round(i)
            if time.monotonic() > deadline:
                break
        report(f"d{depth}.stat", stats)
        report(f"d{depth}.create", creates)
        report(f"d{depth}.unlink", unlinks)
        report(f"d{depth}.round", rounds)


def cpu(work, count, budget_s, call):
    def name(i):
        return os.path.join(work, f"c{i}")

    if call == "create":
        run = lambda i: create(name(i))  # noqa: E731
    elif call == "write-4k":
        for i in range(count + WARM_UP):
            create(name(i))
        run = lambda i: write_4k(name(i))  # noqa: E731
    else:
        raise SystemExit(f"unknown call {call}")
    for i in range(WARM_UP):
        run(count + i)
    print("ready", flush=True)
    sys.stdin.readline()
    before, started = os.times(), time.perf_counter_ns()
    done = len(timed(run, count, budget_s))
    wall, after = time.perf_counter_ns() - started, os.times()
    own = (after.user - before.user) + (after.system - before.system)
    print(f"cpu {call} {done} {wall / done / 1000:.3f} {own / done * 1e6:.3f}", flush=True)
    sys.stdin.readline()


def main():
    mode, base, count, budget_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    work = os.path.join(base, f"{mode}-{os.getpid()}")
    os.mkdir(work)
    try:
        if mode == "calls":
            calls(work, count, budget_s)
        elif mode == "depths":
            depths(work, count, budget_s, [int(d) for d in sys.argv[5:]])
        elif mode == "cpu":
            cpu(work, count, budget_s, sys.argv[5])
        else:
            raise SystemExit(f"unknown mode {mode}")
    finally:
        shutil.rmtree(work)


main()
