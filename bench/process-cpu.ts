/**
 * CPU time spent by processes, for the stream part's CPU per GiB: long-lived ones (the mount,
 * the agents, the bridge, nats-server) by their pid's `/proc/<pid>/stat`, every thread counted;
 * a one-shot program (the shim, dd) by the `times` builtin of the shell that ran it.
 */
import { readFileSync } from 'node:fs';

/** Linux's USER_HZ: the unit of utime and stime in /proc/<pid>/stat, 100 on every Linux ABI. */
const TICKS_PER_SECOND = 100;

export class ProcessGoneError extends Error {
  override name = 'ProcessGoneError';
}

/** User plus system CPU seconds `pid` has used so far, all its threads together. */
export function cpuSeconds(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (cause) {
    throw new ProcessGoneError(`process ${pid} is gone: its CPU time cannot be read`, { cause });
  }
  // The command name, in parentheses, may hold spaces: fields are counted after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5), so 11 and 12 after the name and state.
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** CPU seconds used by each named process between `start()` and the function it returns. */
export function cpuMeter(pids: ReadonlyMap<string, number>): () => Map<string, number> {
  const before = new Map([...pids].map(([name, pid]) => [name, cpuSeconds(pid)]));
  const self = process.cpuUsage();
  return () => {
    const used = new Map<string, number>();
    for (const [name, pid] of pids) used.set(name, cpuSeconds(pid) - (before.get(name) ?? 0));
    const mine = process.cpuUsage(self);
    used.set('bench', (mine.user + mine.system) / 1e6);
    return used;
  };
}

export class TimesOutputError extends Error {
  override name = 'TimesOutputError';
}

/**
 * The children's CPU seconds from the output of the shell's `times` builtin (POSIX: two lines,
 * the shell's own user and system time, then its children's, each as `XmY.YYYs`).
 */
export function childrenCpuSeconds(timesOutput: string): number {
  const values = [...timesOutput.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  if (values.length !== 4) throw new TimesOutputError(`unexpected output of 'times': ${JSON.stringify(timesOutput.slice(0, 200))}`);
  return (values[2] as number) + (values[3] as number);
}
