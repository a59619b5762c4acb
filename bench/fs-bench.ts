/**
 * Runs every filesystem workload on every target, `runs` times. Passes are interleaved (pass 1
 * on every target, then pass 2, ...) so that noise from other work on the machine spreads over
 * all targets alike. A timeout retires the target: a hung mount would only hang the rest.
 */
import { join } from 'node:path';
import type { Fixtures } from './fixtures.js';
import { workloads, type Workload, type WorkloadId } from './fs-workloads.js';
import { CommandFailedError, CommandTimeoutError, runCommand, sh } from './run-command.js';
import type { Target, TargetName } from './target.js';

/** `skipped`: not attempted, because an earlier step of the pass failed or timed out. */
export type Outcome = { ok: true; value: number } | { ok: false; skipped: boolean; reason: string };

export interface Note {
  target: TargetName;
  workload: WorkloadId;
  message: string;
}

export interface FsBenchResults {
  workloads: Workload[];
  /** outcomes[workload][target]: one per pass, in pass order. */
  outcomes: Map<WorkloadId, Map<TargetName, Outcome[]>>;
  notes: Note[];
  /** Bus messages per pass of each workload on the metered target (see runFsBench's `meter`). */
  messages: Map<WorkloadId, number[]>;
}

/** Counts what one target's workloads cost in messages: nats-server's received so far, and its agent's link frames (link-frames.ts). */
export interface BusMeter {
  target: TargetName;
  count(): Promise<number>;
}

/** A short reason for the table cell; the full error goes to the progress log. */
export function describeFailure(err: unknown): string {
  if (err instanceof CommandTimeoutError) return `timeout (${err.timeoutMs / 1000} s)`;
  if (err instanceof CommandFailedError) {
    if (/readlink[^\n]*(Operation not permitted|EPERM)/i.test(err.stderr)) return 'EPERM on readlink';
    const lastLine = err.stderr.trim().split('\n').pop()?.trim();
    return (lastLine || err.status).slice(0, 70);
  }
  return (err instanceof Error ? err.message : String(err)).slice(0, 70);
}

function value(w: Workload, ms: number, f: Fixtures): number {
  return w.unit === 'MB/s' ? f.sizeBytes / 1e6 / (ms / 1000) : ms / 1000;
}

/** Removes what a failed earlier pass left, so it cannot change what this one measures. */
async function removeLeftovers(target: Target, progress: (line: string) => void): Promise<void> {
  const leftovers = ['big', 'tree'].map((name) => sh(join(target.mountPath, name))).join(' ');
  await runCommand(`rm -rf ${leftovers}`, { timeoutMs: 300_000 })
    .catch((err: unknown) => progress(`${target.name}: cannot remove leftovers: ${(err as Error).message}`));
}

export async function runFsBench(
  targets: Target[], fixtures: Fixtures, runs: number, progress: (line: string) => void, meter?: BusMeter,
): Promise<FsBenchResults> {
  const list = workloads(fixtures);
  const outcomes = new Map<WorkloadId, Map<TargetName, Outcome[]>>(
    list.map((w) => [w.id, new Map(targets.map((t) => [t.name, []]))]));
  const notes: Note[] = [];
  const messages = new Map<WorkloadId, number[]>(list.map((w) => [w.id, []]));
  /** Targets a timeout took out of the run, with the reason shown in their remaining cells. */
  const retired = new Map<TargetName, string>();

  for (let pass = 1; pass <= runs; pass++) {
    for (const target of targets) {
      if (!retired.has(target.name)) await removeLeftovers(target, progress);
      const failed = new Set<WorkloadId>();
      for (const w of list) {
        const record = (outcome: Outcome) => outcomes.get(w.id)?.get(target.name)?.push(outcome);
        const where = `[pass ${pass}/${runs}] ${target.name.padEnd(10)} ${w.id.padEnd(10)}`;
        const stop = retired.get(target.name);
        if (stop !== undefined) {
          record({ ok: false, skipped: true, reason: stop });
          continue;
        }
        if (w.needs && failed.has(w.needs)) {
          failed.add(w.id);
          record({ ok: false, skipped: true, reason: `${w.needs} failed` });
          continue;
        }
        const note = (message: string) => {
          notes.push({ target: target.name, workload: w.id, message });
          progress(`  ! ${target.name} ${w.id}: ${message}`);
        };
        try {
          const metered = meter?.target === target.name ? meter : undefined;
          const before = await metered?.count();
          const v = value(w, await w.run({ target, fixtures, check: pass === 1, note }), fixtures);
          if (metered && before !== undefined) messages.get(w.id)?.push((await metered.count()) - before);
          record({ ok: true, value: v });
          progress(`${where} ${v.toFixed(w.unit === 's' ? 2 : 0)} ${w.unit}`);
        } catch (err) {
          failed.add(w.id);
          record({ ok: false, skipped: false, reason: describeFailure(err) });
          progress(`${where} FAILED: ${(err as Error).message}`);
          if (err instanceof CommandTimeoutError) retired.set(target.name, `${w.id} timed out earlier`);
        }
      }
    }
  }
  return { workloads: list, outcomes, notes, messages };
}
