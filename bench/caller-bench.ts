/**
 * What acting as the caller costs (issue 13, "Mind the cost"): stat + create + unlink at depths
 * 1, 10, 100 and 200, by root (whose calls the agent does not check) and by uid 1000 (every
 * directory of every path checked for search permission), on a splitbrain mount with
 * allow_other and on the local disk. Passes are interleaved, so noise spreads over all columns.
 */
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.js';
import { markdownTable } from './markdown-table.js';
import { runArgv } from './run-command.js';
import { startSplitbrain } from './splitbrain-target.js';
import { median } from './stats.js';

export const CALLER_DEPTHS = [1, 10, 100, 200] as const;
const SCRIPT = new URL('../../bench/caller-calls.py', import.meta.url).pathname;
const USER = ['setpriv', '--reuid=1000', '--regid=1000', '--clear-groups'];

export type CallerColumn = 'local-root' | 'local-user' | 'splitbrain-root' | 'splitbrain-user';
export const CALLER_COLUMNS: readonly CallerColumn[] = ['local-root', 'local-user', 'splitbrain-root', 'splitbrain-user'];

export interface CallerBenchResults {
  rounds: number;
  /** ms per round (stat + create + unlink), by depth and column, one per pass. */
  ms: Map<number, Map<CallerColumn, number[]>>;
}

async function time(column: CallerColumn, base: string, depth: number, rounds: number): Promise<number> {
  // Debian's python3: an interpreter under root's home (pyenv) is not uid 1000's to run.
  const argv = [...(column.endsWith('-user') ? USER : []), '/usr/bin/python3', SCRIPT, base, String(depth), String(rounds)];
  const { stdout } = await runArgv(argv, { timeoutMs: 300_000 });
  return Number(stdout.trim());
}

export async function measureCallerBench(
  workDir: string, natsUrl: string, runs: number, cleanup: Cleanup, progress: (line: string) => void,
): Promise<CallerBenchResults> {
  const dir = join(workDir, 'callers');
  await mkdir(dir);
  const mount = await startSplitbrain(dir, natsUrl, 'allow_other', cleanup, 'bench-callers');
  const bases = new Map<CallerColumn, string>();
  for (const column of CALLER_COLUMNS) {
    const base = join(column.startsWith('local') ? join(dir, 'local') : mount.mountPath, column);
    await mkdir(base, { recursive: true });
    await chmod(base, 0o1777);
    bases.set(column, base);
  }
  for (const reached of [workDir, dir]) await chmod(reached, 0o755); // uid 1000 must reach both
  const rounds = 100;
  const ms = new Map(CALLER_DEPTHS.map((d) => [d, new Map(CALLER_COLUMNS.map((c) => [c, [] as number[]]))]));
  for (let pass = 0; pass <= runs; pass++) {
    for (const depth of CALLER_DEPTHS) {
      for (const column of CALLER_COLUMNS) {
        const value = await time(column, bases.get(column) as string, depth, rounds);
        if (pass > 0) ms.get(depth)?.get(column)?.push(value); // pass 0 makes the trees and warms up
      }
    }
    if (pass > 0) progress(`callers: pass ${pass} of ${runs}`);
  }
  return { rounds, ms };
}

/** The median ms of one cell. */
export function callerMedian(results: CallerBenchResults, depth: number, column: CallerColumn): number | undefined {
  const values = results.ms.get(depth)?.get(column) ?? [];
  return values.length > 0 ? median(values) : undefined;
}

/** The bar: a checked call at most 20 % slower than the same call unchecked (root's). */
const CHECK_COST_BAR = 1.2;

export function callerTable(results: CallerBenchResults): string {
  const ms = (v: number | undefined) => (v === undefined ? '—' : `${v.toFixed(2)} ms`);
  const rows = CALLER_DEPTHS.map((depth) => {
    const cells = CALLER_COLUMNS.map((c) => callerMedian(results, depth, c));
    const [, , root, user] = cells;
    const ratio = root !== undefined && user !== undefined ? user / root : undefined;
    const ratioText = ratio === undefined ? '—' : `${ratio.toFixed(2)} ${ratio <= CHECK_COST_BAR ? '✓' : '✗'}`;
    return [String(depth), ...cells.map(ms), ratioText];
  });
  return markdownTable(['Depth', 'local, root', 'local, uid 1000', 'splitbrain, root', 'splitbrain, uid 1000',
    'splitbrain uid 1000 ÷ root'], rows);
}

export const CALLER_TABLE_LEGEND = 'stat + create + unlink at the end of a path that many directories deep, '
  + 'milliseconds per round (median of the passes). A root agent checks every call of uid 1000 as the '
  + 'slave\'s kernel would (search permission on every directory, then the call\'s own rule) and none of '
  + 'root\'s, so the last column is what the checks cost; ✓ marks the issue\'s "at most 20 % slower".';
