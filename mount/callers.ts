/**
 * Who a kernel operation is for. FUSE gives every request the caller's uid, gid and pid (in the
 * mount's PID namespace); the agent also needs the supplementary groups, which only the
 * caller's /proc entry tells. They are read once per process and kept briefly: a process that
 * changes its groups (setgroups) is seen to within GROUPS_TTL_MS.
 */
import { readFileSync } from 'node:fs';
import { MAX_GROUPS, type Caller } from '../protocol/index.js';
import { GROUP_IDS, USER_IDS } from './id-maps.js';

export interface FuseCaller {
  uid: number;
  gid: number;
  /** 0 when the caller is in a PID namespace the mount cannot see. */
  pid: number;
}

/**
 * Requests the mount makes on its own behalf (writing again after a restart, probes): root, or in
 * a user namespace whoever its root is outside (id-maps.ts).
 */
export const MOUNT_ITSELF: FuseCaller = Object.freeze({ uid: USER_IDS.toMaster(0) ?? 0, gid: GROUP_IDS.toMaster(0) ?? 0, pid: 0 });

const GROUPS_TTL_MS = 1000;
const MAX_REMEMBERED = 4096;

/** The `Groups:` line of /proc/PID/status; undefined when the process cannot be seen. */
export function supplementaryGroups(pid: number): number[] | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const line = /^Groups:\t?(.*)$/m.exec(status);
  if (!line) return undefined;
  // As our user namespace sees them: the master's, less those it does not map (id-maps.ts).
  return (line[1] ?? '').split(/\s+/).filter((g) => g.length > 0).map(Number)
    .filter((g) => Number.isInteger(g) && g >= 0 && g <= 0xffffffff)
    .flatMap((g) => { const master = GROUP_IDS.toMaster(g); return master === undefined ? [] : [master]; })
    .slice(0, MAX_GROUPS);
}

export class CallerGroups {
  private readonly known = new Map<string, { caller: Caller; expires: number }>();

  /** The caller as the wire carries it. Root needs no groups: nothing is refused to it. */
  wire(fuse: FuseCaller): Caller {
    if (fuse.uid === 0) return { uid: 0, gid: fuse.gid, groups: [] };
    const key = `${fuse.pid}:${fuse.uid}:${fuse.gid}`;
    const now = Date.now();
    const hit = this.known.get(key);
    if (hit && hit.expires > now) return hit.caller;
    // An invisible caller (another PID namespace, or gone) gets its primary group only.
    const groups = fuse.pid > 0 ? supplementaryGroups(fuse.pid) ?? [] : [];
    const caller: Caller = { uid: fuse.uid, gid: fuse.gid, groups };
    if (this.known.size >= MAX_REMEMBERED) this.known.clear();
    this.known.set(key, { caller, expires: now + GROUPS_TTL_MS });
    return caller;
  }
}
