/**
 * The change feed's two modes, for suites that run in both: auto (fanotify on the export's
 * filesystem where the kernel and privileges allow) and inotify (`--watch-mode inotify`).
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { AgentProcess } from './slave.js';

export const WATCH_MODES = ['auto', 'inotify'] as const;
export type TestWatchMode = (typeof WATCH_MODES)[number];

const CAP_DAC_READ_SEARCH = 2n;
const CAP_SYS_ADMIN = 21n;

/** The mode an agent started with `mode` reports: fanotify needs root's CAP_SYS_ADMIN here. */
export async function expectedFeedMode(mode: TestWatchMode): Promise<'inotify' | 'fanotify'> {
  if (mode === 'inotify') return 'inotify';
  const status = await readFile('/proc/self/status', 'utf8');
  const caps = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1] ?? '0'}`);
  const has = (cap: bigint) => ((caps >> cap) & 1n) === 1n;
  return has(CAP_SYS_ADMIN) && has(CAP_DAC_READ_SEARCH) ? 'fanotify' : 'inotify';
}

export function watchModeArgs(mode: TestWatchMode): string[] {
  return ['--watch-mode', mode];
}

/** The agent's watcher: its child named splitbrain-watch. */
export async function watcherPid(agent: AgentProcess): Promise<number> {
  const pid = agent.child.pid as number;
  const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean);
  for (const child of children) {
    const comm = (await readFile(`/proc/${child}/comm`, 'utf8').catch(() => '')).trim();
    if (comm.startsWith('splitbrain-watc')) return Number(child);
  }
  throw new Error(`no watcher among the agent's children ${children.join(' ')}`);
}

/**
 * Runs `start` with the kernel's inotify and fanotify queues at 32 events: both limits are read
 * when the watcher makes its instances, so only the agent started here gets them (and not its
 * instances after an overflow).
 */
export async function withSmallQueues<T>(start: () => Promise<T>): Promise<T> {
  const files = ['/proc/sys/fs/inotify/max_queued_events', '/proc/sys/fs/fanotify/max_queued_events'];
  const saved = await Promise.all(files.map(async (file) => (await readFile(file, 'utf8').catch(() => '')).trim()));
  try {
    for (const [i, file] of files.entries()) if (saved[i] !== '') await writeFile(file, '32');
    return await start();
  } finally {
    for (const [i, file] of files.entries()) if (saved[i] !== '') await writeFile(file, saved[i] as string);
  }
}
