/**
 * Coherence (issue 14): how long a file rewritten on the slave side, not through the mount, takes
 * to show through the mount, timed by coherence-probe.py on every target at once. The probes
 * mostly sleep between 1 ms polls, so running them together costs little precision and saves
 * the minutes a 1 s cache takes over 200 changes on each target in turn.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PYTHON } from './call-bench.js';
import { describeFailure } from './fs-bench.js';
import { runArgv } from './run-command.js';
import type { Target, TargetName } from './target.js';

const SCRIPT = new URL('../../bench/coherence-probe.py', import.meta.url).pathname;
/** A change not seen by then counts as a timeout. */
export const COHERENCE_DEADLINE_S = 30;
/** Each target's probe stops after this long, with the changes it has seen. */
const BUDGET_S = 300;
/** When each of the first five changes takes longer than this, the probe stops. */
const SLOW_S = 5;

export type CoherenceOutcome =
  | { ok: true; waitsUs: number[]; timeouts: number; stopped: string | undefined }
  | { ok: false; reason: string };

export interface CoherenceResults {
  changes: number;
  byTarget: Map<TargetName, CoherenceOutcome>;
}

export class ProbeOutputError extends Error {
  override name = 'ProbeOutputError';
}

function parseProbe(stdout: string): CoherenceOutcome {
  const waitsUs: number[] = [];
  let timeouts = 0;
  let stopped: string | undefined;
  for (const line of stdout.trim().split('\n')) {
    const [word, ...rest] = line.trim().split(' ');
    if (word === 'wait' && Number.isFinite(Number(rest[0]))) waitsUs.push(Number(rest[0]));
    else if (word === 'timeout') timeouts += 1;
    else if (word === 'stop') stopped = rest.join(' ');
    else throw new ProbeOutputError(`coherence-probe.py printed '${line}'`);
  }
  return { ok: true, waitsUs, timeouts, stopped };
}

async function probe(target: Target, changes: number): Promise<CoherenceOutcome> {
  try {
    // Made through the mount, so the mount knows the directory before the probe looks into it.
    const mountDir = join(target.mountPath, 'coherence');
    await mkdir(mountDir, { recursive: true });
    const args = [mountDir, join(target.slavePath, 'coherence'), changes, COHERENCE_DEADLINE_S, BUDGET_S, SLOW_S].map(String);
    const timeoutMs = (BUDGET_S + 2 * COHERENCE_DEADLINE_S + 60) * 1000;
    const { stdout } = await runArgv([PYTHON, SCRIPT, ...args], { timeoutMs });
    return parseProbe(stdout);
  } catch (err) {
    return { ok: false, reason: describeFailure(err) };
  }
}

export async function measureCoherence(
  targets: readonly Target[], changes: number, progress: (line: string) => void,
): Promise<CoherenceResults> {
  progress(`coherence: ${changes} changes on ${targets.map((t) => t.name).join(', ')} at once (at most ${BUDGET_S} s)`);
  const outcomes = await Promise.all(targets.map(async (target) => {
    const outcome = await probe(target, changes);
    const said = outcome.ok ? `${outcome.waitsUs.length} seen, ${outcome.timeouts} timed out` : `FAILED: ${outcome.reason}`;
    progress(`coherence: ${target.name} ${said}${outcome.ok && outcome.stopped ? ` (stopped: ${outcome.stopped})` : ''}`);
    return [target.name, outcome] as const;
  }));
  return { changes, byTarget: new Map(outcomes) };
}
