/**
 * What single calls cost (issue 14): each filesystem call timed on its own by call-timing.py,
 * one Python process per target and part: the calls at depth 1, then stat + create + unlink at
 * the end of chains of 1 to 200 directories. Targets run one after the other, so none of them
 * shares the CPUs with another's timed loop.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describeFailure } from './fs-bench.js';
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

export interface CallBenchResults {
  iterations: number;
  calls: Map<TargetName, Timings>;
  depths: Map<TargetName, Timings>;
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

async function time(args: string[]): Promise<Timings> {
  try {
    const { stdout } = await runArgv([PYTHON, SCRIPT, ...args], { timeoutMs: RUN_TIMEOUT_MS });
    return { ok: true, byKey: parseTimings(stdout) };
  } catch (err) {
    return { ok: false, reason: describeFailure(err) };
  }
}

export async function measureCallBench(
  targets: readonly Target[], iterations: number, progress: (line: string) => void,
): Promise<CallBenchResults> {
  const results: CallBenchResults = { iterations, calls: new Map(), depths: new Map() };
  const ordered = CALL_TARGETS.flatMap((name) => targets.filter((t) => t.name === name));
  for (const target of ordered) {
    const base = join(target.mountPath, 'calls');
    await mkdir(base, { recursive: true });
    const loop = [String(iterations), String(LOOP_BUDGET_S)];
    const calls = await time(['calls', base, ...loop]);
    results.calls.set(target.name, calls);
    progress(`calls: ${target.name} per call ${calls.ok ? 'done' : `FAILED: ${calls.reason}`}`);
    const depths = await time(['depths', base, ...loop, ...CALL_DEPTHS.map(String)]);
    results.depths.set(target.name, depths);
    progress(`calls: ${target.name} by depth ${depths.ok ? 'done' : `FAILED: ${depths.reason}`}`);
  }
  return results;
}
