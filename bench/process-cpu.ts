/**
 * CPU time spent by processes, for the stream part's CPU per GiB and the call part's CPU per
 * call: long-lived ones (the mount, the agents, the bridge, nats-server, sshfs and its ssh, sshd's
 * session and sftp-server) by their pid's `/proc/<pid>/stat`, every thread counted; a one-shot
 * program (the shim, dd) by the `times` builtin of the shell that ran it.
 */
import { readFileSync, readdirSync } from 'node:fs';

/** Linux's USER_HZ: the unit of utime and stime in /proc/<pid>/stat, 100 on every Linux ABI. */
const TICKS_PER_SECOND = 100;

export class ProcessGoneError extends Error {
  override name = 'ProcessGoneError';
}

/**
 * The fields of a `/proc/<pid>/stat` line after the command name and its parentheses (which may
 * hold spaces): the state first, then ppid, ... (stat(5)'s fields 3 on).
 */
function fieldsAfterName(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** User plus system CPU seconds `pid` has used so far, all its threads together. */
export function cpuSeconds(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (cause) {
    throw new ProcessGoneError(`process ${pid} is gone: its CPU time cannot be read`, { cause });
  }
  const fields = fieldsAfterName(stat);
  // utime and stime are fields 14 and 15 of stat(5), so 11 and 12 after the name and state.
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** The processes below `pid` (its children, theirs, ...), as /proc shows them now. */
export function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const ppid = Number(fieldsAfterName(stat)[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const found: number[] = [];
  const todo = [...(children.get(pid) ?? [])];
  while (todo.length > 0) {
    const next = todo.shift() as number;
    found.push(next);
    todo.push(...(children.get(next) ?? []));
  }
  return found;
}

/**
 * CPU seconds `pids` used together between this call and the function it returns; a process gone
 * by then counts what it had used when this was called, and one gone already (found a moment
 * before, by descendantsOf) counts nothing.
 */
export function groupCpuMeter(pids: readonly number[]): () => number {
  const before = new Map<number, number>();
  for (const pid of pids) {
    try {
      before.set(pid, cpuSeconds(pid));
    } catch (err) {
      if (!(err instanceof ProcessGoneError)) throw err;
    }
  }
  return () => {
    let used = 0;
    for (const [pid, was] of before) {
      try {
        used += cpuSeconds(pid) - was;
      } catch (err) {
        if (!(err instanceof ProcessGoneError)) throw err;
      }
    }
    return used;
  };
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
