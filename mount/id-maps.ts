/**
 * User and group ids between this process's user namespace and the master's. The kernel gives a
 * FUSE server every id as the server's own user namespace sees it, and takes the ids in its
 * replies the same way. In the master's initial namespace that is the master's ids, and nothing
 * here does anything. In the user namespace of `splitbrain shell` without root (where the mount
 * is root, and root is the caller outside), the caller's requests would reach the agent as uid 0
 * and the caller's own files would show as nobody's: ids are therefore turned into the master's
 * on the way in (callers, chown) and back on the way out (attributes), by /proc/self/uid_map and
 * gid_map. An id the namespace does not map shows as the kernel's overflow id (65534).
 */
import { readFileSync } from 'node:fs';

/** What the kernel shows for an id a namespace does not map (kernel.overflowuid's default). */
export const OVERFLOW_ID = 65534;

interface IdRange { inside: number; outside: number; count: number }

export class IdMap {
  /** True when every id is itself (the initial user namespace): callers skip the mapping. */
  readonly identity: boolean;

  constructor(private readonly ranges: readonly IdRange[]) {
    this.identity = ranges.length === 1 && ranges[0]?.inside === 0 && ranges[0].outside === 0 && ranges[0].count === 0xffffffff;
  }

  /** The map as /proc/PID/uid_map or gid_map writes it ("inside outside count" lines). */
  static parse(text: string): IdMap {
    const ranges = text.split('\n').map((line) => line.trim().split(/\s+/).map(Number))
      .filter((f) => f.length === 3 && f.every((n) => Number.isInteger(n) && n >= 0))
      .map(([inside = 0, outside = 0, count = 0]) => ({ inside, outside, count }));
    return new IdMap(ranges);
  }

  static ofSelf(which: 'uid_map' | 'gid_map'): IdMap {
    try {
      return IdMap.parse(readFileSync(`/proc/self/${which}`, 'utf8'));
    } catch {
      return IdMap.parse('0 0 4294967295'); // no /proc: as the initial namespace
    }
  }

  /** The master's id for one this namespace sees; undefined when unmapped. */
  toMaster(id: number): number | undefined {
    if (this.identity) return id;
    for (const r of this.ranges) if (id >= r.inside && id - r.inside < r.count) return r.outside + (id - r.inside);
    return undefined;
  }

  /** This namespace's id for one of the master's (the overflow id when unmapped). */
  fromMaster(id: number): number {
    if (this.identity) return id;
    for (const r of this.ranges) if (id >= r.outside && id - r.outside < r.count) return r.inside + (id - r.outside);
    return OVERFLOW_ID;
  }
}

/** This process's maps: a process's user namespace never changes, so they are read once. */
export const USER_IDS = IdMap.ofSelf('uid_map');
export const GROUP_IDS = IdMap.ofSelf('gid_map');
