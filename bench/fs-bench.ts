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

export async function runFsBench(
  targets: Target[], fixtures: Fixtures, runs: number, progress: (line: string) => void,
): Promise<FsBenchResults> {
  const list = workloads(fixtures);
  const outcomes = new Map<WorkloadId, Map<TargetName, Outcome[]>>(
    list.map((w) => [w.id, new Map(targets.map((t) => [t.name, []]))]));
  const notes: Note[] = [];
  const retired = new Map<TargetName, string>();
  const record = (w: WorkloadId, t: TargetName, outcome: Outcome) => outcomes.get(w)?.get(t)?.push(outcome);

  for (let pass = 1; pass <= runs; pass++) {
    for (const target of targets) {
      const failed = new Set<WorkloadId>();
      const retiredBecause = retired.get(target.name);
      if (retiredBecause === undefined) {
        // Leftovers of a failed pass would change what the next one measures.
        await runCommand(`rm -rf ${sh(join(target.mountPath, 'big'))} ${sh(join(target.mountPath, 'tree'))}`, { timeoutMs: 300_000 })
          .catch((err: unknown) => progress(`${target.name}: cannot remove leftovers: ${(err as Error).message}`));
      }
      for (const w of list) {
        const stop = retired.get(target.name);
        if (stop !== undefined) {
          record(w.id, target.name, { ok: false, skipped: true, reason: stop });
          continue;
        }
        if (w.needs && failed.has(w.needs)) {
          failed.add(w.id);
          record(w.id, target.name, { ok: false, skipped: true, reason: `${w.needs} failed` });
          continue;
        }
        const ctx = {
          target, fixtures, check: pass === 1,
          note: (message: string) => {
            notes.push({ target: target.name, workload: w.id, message });
            progress(`  ! ${target.name} ${w.id}: ${message}`);
          },
        };
        try {
          const v = value(w, await w.run(ctx), fixtures);
          record(w.id, target.name, { ok: true, value: v });
          progress(`[pass ${pass}/${runs}] ${target.name.padEnd(10)} ${w.id.padEnd(10)} ${v.toFixed(w.unit === 's' ? 2 : 0)} ${w.unit}`);
        } catch (err) {
          failed.add(w.id);
          const reason = describeFailure(err);
          record(w.id, target.name, { ok: false, skipped: false, reason });
          progress(`[pass ${pass}/${runs}] ${target.name.padEnd(10)} ${w.id.padEnd(10)} FAILED: ${(err as Error).message}`);
          if (err instanceof CommandTimeoutError) retired.set(target.name, `${w.id} timed out earlier`);
        }
      }
    }
  }
  return { workloads: list, outcomes, notes };
}
