/**
 * What single calls cost (issue 14): each filesystem call timed on its own by call-timing.py,
 * one Python process per target and part: the calls at depth 1, then stat + create + unlink at
 * the end of chains of 1 to 200 directories. Targets run one after the other, so none of them
 * shares the CPUs with another's timed loop.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describeFailure } from './fs-bench.js';
import { forgetRecentDeletions } from './page-cache.js';
import { groupCpuMeter } from './process-cpu.js';
import { runArgv } from './run-command.js';
import type { Target, TargetName } from './target.js';

/** Debian's python3, as the caller bench uses: the same interpreter on every machine of ours. */
export const PYTHON = '/usr/bin/python3';
const SCRIPT = new URL('../../bench/call-timing.py', import.meta.url).pathname;

export const CALL_IDS = ['stat-known', 'stat-missing', 'create', 'write-4k', 'chmod', 'unlink', 'mkdir', 'rmdir'] as const;
export type CallId = (typeof CALL_IDS)[number];
export const CALL_DEPTHS = [1, 10, 100, 200] as const;
/** Key suffixes of the depth part, `d<depth>.<part>`; `round` is the three calls together. */
export type DepthPart = 'stat' | 'create' | 'unlink' | 'round';
/** The table's column order: from the floor up to the system under test. */
export const CALL_TARGETS: readonly TargetName[] = ['local', 'bindfs', 'sshfs', 'splitbrain'];

/** A loop stops early after this long; the count then says how many calls were timed. */
const LOOP_BUDGET_S = 10;
const RUN_TIMEOUT_MS = 300_000;

export interface CallStat {
  count: number;
  medianUs: number;
}

/** Medians by call-timing.py's key (`create`, `d200.stat`, ...), or why there are none. */
export type Timings = { ok: true; byKey: Map<string, CallStat> } | { ok: false; reason: string };

/** The calls whose CPU cost per process is measured, the one that waits for the slave first. */
export const CPU_CALLS = ['write-4k', 'create'] as const;
export type CpuCallId = (typeof CPU_CALLS)[number];
/** Calls per CPU loop: CPU time is counted in 10 ms ticks, so a loop must run seconds, not milliseconds. */
export const CPU_LOOP_CALLS = 2000;
/**
 * Untimed rounds before the timed calls on loopback. The mount compiles its hot paths as it serves
 * them (V8): on fresh mounts, after call-timing.py's 20 rounds, create + close ran at 450-550 µs
 * (median of 300) and write 4 KiB + close at 1.7-2.2 ms; after 300, at 140 µs and 1.3-1.5 ms (two
 * alternated pairs, by hand). sshfs and bindfs are compiled ahead. A test suite's mount serves
 * thousands of calls: this times it as that long-running mount, not while it compiles. The delayed
 * link keeps the short warm-up (each round costs sshfs several round trips there).
 */
export const LOOPBACK_WARM_UP = 200;
const DEFAULT_WARM_UP = 20;

/** CPU µs one call cost each process, and its wall time: means over a loop of `count` calls. */
export interface CallCpu {
  count: number;
  wallUs: number;
  programUs: number;
  near?: { label: string; us: number };
  far?: { label: string; us: number };
}

export type CpuOutcome = { ok: true; value: CallCpu } | { ok: false; reason: string };

export interface CallBenchResults {
  iterations: number;
  /** Untimed rounds of every call before the timed ones (call-timing.py's CALL_TIMING_WARM_UP). */
  warmUp: number;
  calls: Map<TargetName, Timings>;
  depths: Map<TargetName, Timings>;
  /** Only when asked for (the loopback part): by target, then by call. */
  cpu?: Map<TargetName, Map<CpuCallId, CpuOutcome>>;
}

export class TimingOutputError extends Error {
  override name = 'TimingOutputError';
}

function parseTimings(stdout: string): Map<string, CallStat> {
  const byKey = new Map<string, CallStat>();
  for (const line of stdout.trim().split('\n')) {
    const [key, count, medianUs] = line.trim().split(/\s+/);
    if (key === undefined || !Number.isFinite(Number(count)) || !Number.isFinite(Number(medianUs))) {
      throw new TimingOutputError(`call-timing.py printed '${line}'`);
    }
    byKey.set(key, { count: Number(count), medianUs: Number(medianUs) });
  }
  return byKey;
}

/** call-timing.py's environment: this process's, with the untimed rounds it runs first. */
function warmUpEnv(warmUp: number): NodeJS.ProcessEnv {
  return { ...process.env, CALL_TIMING_WARM_UP: String(warmUp) };
}

async function time(args: string[], warmUp: number): Promise<Timings> {
  try {
    const { stdout } = await runArgv([PYTHON, SCRIPT, ...args], { timeoutMs: RUN_TIMEOUT_MS, env: warmUpEnv(warmUp) });
    return { ok: true, byKey: parseTimings(stdout) };
  } catch (err) {
    return { ok: false, reason: describeFailure(err) };
  }
}

/**
 * One call in a loop (call-timing.py cpu), with the CPU time of the processes serving the target
 * read just before the loop starts and as soon as it is over, before the script removes its
 * files (it waits on stdin at both points).
 */
async function callCpu(target: Target, base: string, call: CpuCallId, warmUp: number): Promise<CpuOutcome> {
  let meters: { label: string; used: () => number }[] = [];
  let used: { label: string; seconds: number }[] = [];
  let unreadable: string | undefined;
  const reading = (read: () => void) => () => {
    try {
      read();
    } catch (err) {
      unreadable ??= describeFailure(err);
    }
    return 'go\n';
  };
  try {
    const { stdout } = await runArgv([PYTHON, SCRIPT, 'cpu', base, String(CPU_LOOP_CALLS), String(LOOP_BUDGET_S), call], {
      timeoutMs: RUN_TIMEOUT_MS,
      env: warmUpEnv(warmUp),
      prompts: [
        { text: 'ready\n', answer: reading(() => {
          const servers = target.servers?.();
          meters = [servers?.near, servers?.far].flatMap((group) => (group ? [{ label: group.label, used: groupCpuMeter(group.pids) }] : []));
        }) },
        { text: '\n', answer: reading(() => { used = meters.map(({ label, used: read }) => ({ label, seconds: read() })); }) },
      ],
    });
    if (unreadable !== undefined) return { ok: false, reason: `CPU time not readable: ${unreadable}` };
    const [tag, , count, wallUs, programUs] = stdout.trim().split('\n').pop()?.split(' ') ?? [];
    const n = Number(count);
    if (tag !== 'cpu' || !(n > 0) || !Number.isFinite(Number(wallUs)) || !Number.isFinite(Number(programUs))) {
      throw new TimingOutputError(`call-timing.py cpu printed '${stdout.trim()}'`);
    }
    const [near, far] = used.map(({ label, seconds }) => ({ label, us: (seconds / n) * 1e6 }));
    return { ok: true, value: { count: n, wallUs: Number(wallUs), programUs: Number(programUs), ...(near ? { near } : {}), ...(far ? { far } : {}) } };
  } catch (err) {
    return { ok: false, reason: describeFailure(err) };
  }
}

/**
 * `loopback`: the loopback part's run: the long warm-up (LOOPBACK_WARM_UP), and what one call of
 * CPU_CALLS costs each process.
 */
export async function measureCallBench(
  targets: readonly Target[], iterations: number, progress: (line: string) => void, loopback = false,
): Promise<CallBenchResults> {
  const warmUp = loopback ? LOOPBACK_WARM_UP : DEFAULT_WARM_UP;
  const results: CallBenchResults = { iterations, warmUp, calls: new Map(), depths: new Map(), ...(loopback ? { cpu: new Map() } : {}) };
  const ordered = CALL_TARGETS.flatMap((name) => targets.filter((t) => t.name === name));
  for (const target of ordered) {
    const base = join(target.mountPath, 'calls');
    await mkdir(base, { recursive: true });
    await forgetRecentDeletions(); // the workloads' and the last target's deletions
    const loop = [String(iterations), String(LOOP_BUDGET_S)];
    const calls = await time(['calls', base, ...loop], warmUp);
    results.calls.set(target.name, calls);
    progress(`calls: ${target.name} per call ${calls.ok ? 'done' : `FAILED: ${calls.reason}`}`);
    const depths = await time(['depths', base, ...loop, ...CALL_DEPTHS.map(String)], warmUp);
    results.depths.set(target.name, depths);
    progress(`calls: ${target.name} by depth ${depths.ok ? 'done' : `FAILED: ${depths.reason}`}`);
    if (!results.cpu) continue;
    const byCall = new Map<CpuCallId, CpuOutcome>();
    for (const call of CPU_CALLS) {
      const outcome = await callCpu(target, base, call, warmUp);
      byCall.set(call, outcome);
      progress(`calls: ${target.name} CPU per ${call} ${outcome.ok ? 'done' : `FAILED: ${outcome.reason}`}`);
    }
    results.cpu.set(target.name, byCall);
  }
  return results;
}
